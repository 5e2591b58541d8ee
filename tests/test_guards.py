"""The never-raising decompositions: torch's answers on finite input, NaN where none exists."""

import math

import pytest
import torch

from functional_struct import _guards as g

F64 = torch.float64
BAD = [math.nan, math.inf, -math.inf]


def _x(*shape, scale=1.0, seed=0, dtype=F64):
    return scale * torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _reconstruct(u, s, vh):
    return (u * s.unsqueeze(-2)) @ vh


@pytest.mark.parametrize("shape", [(4, 4), (3, 5), (6, 2), (2, 3, 3)])
@pytest.mark.parametrize("scale", [1e-30, 1e-3, 1.0, 3.0, 1e30])
def test_svd_and_svdvals_equal_torch_on_finite_input(shape, scale):
    x = _x(*shape, scale=scale)
    expected = torch.linalg.svdvals(x)
    torch.testing.assert_close(g.svdvals(x), expected, rtol=1e-12, atol=0)
    u, s, vh = g.svd(x)
    torch.testing.assert_close(s, expected, rtol=1e-12, atol=0)
    k = min(shape[-2:])
    assert u.shape == (*shape[:-1], k)
    assert vh.shape == (*shape[:-2], k, shape[-1])
    torch.testing.assert_close(_reconstruct(u, s, vh), x, rtol=1e-10, atol=1e-12 * scale)


@pytest.mark.parametrize("scale", [1e-30, 1e-3, 1.0, 3.0, 1e30])
def test_eigh_and_eigvalsh_equal_torch_on_the_symmetric_part(scale):
    x = _x(3, 5, 5, scale=scale)  # not symmetric: both use (x + xᵀ) / 2
    sym = (x + x.mT) / 2
    expected = torch.linalg.eigvalsh(sym)
    torch.testing.assert_close(g.eigvalsh(x), expected, rtol=1e-12, atol=1e-12 * scale)
    values, vectors = g.eigh(x)
    torch.testing.assert_close(values, expected, rtol=1e-12, atol=1e-12 * scale)
    rebuilt = (vectors * values.unsqueeze(-2)) @ vectors.mT
    torch.testing.assert_close(rebuilt, sym, rtol=1e-10, atol=1e-12 * scale)


def test_a_power_of_two_scale_is_undone_exactly():
    """Dividing by a power of two and multiplying back loses nothing: a diagonal matrix's
    singular values and eigenvalues come back bit for bit."""
    d = torch.tensor([3.0, 0.75, 5e-3], dtype=F64)
    x = torch.diag(d)
    assert torch.equal(g.svdvals(x), d)
    assert torch.equal(g.eigvalsh(x), d.sort().values)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_entries_near_float_max_do_not_overflow(dtype):
    big = torch.finfo(dtype).max / 2
    x = torch.tensor([[big, 0.0], [0.0, big / 4]], dtype=dtype)
    torch.testing.assert_close(g.svdvals(x), torch.tensor([big, big / 4], dtype=dtype))
    torch.testing.assert_close(g.svd(x)[1], torch.tensor([big, big / 4], dtype=dtype))
    # x + xᵀ would overflow here; the symmetric part is formed after scaling.
    y = torch.tensor([[big, big], [big, -big]], dtype=dtype)
    values = g.eigvalsh(y)
    assert torch.isfinite(values).all()
    torch.testing.assert_close(values, torch.tensor([-1.0, 1.0], dtype=dtype) * big * 2**0.5)
    assert torch.isfinite(g.eigh(y)[1]).all()


def test_zero_matrices():
    z = torch.zeros(2, 3, 3, dtype=F64)
    assert torch.equal(g.svdvals(z), torch.zeros(2, 3, dtype=F64))
    assert torch.equal(g.eigvalsh(z), torch.zeros(2, 3, dtype=F64))
    u, s, vh = g.svd(z)
    assert torch.isfinite(u).all()
    assert torch.isfinite(vh).all()


@pytest.mark.parametrize("bad", BAD)
def test_non_finite_matrices_give_nan_and_leave_the_others_alone(bad):
    x = _x(3, 4, 4)
    x[1, 2, 0] = bad
    good = torch.tensor([True, False, True])

    def check(t):
        assert t[1].isnan().all()
        assert torch.isfinite(t[good]).all()

    check(g.svdvals(x))
    for part in g.svd(x):
        check(part)
    check(g.eigvalsh(x))
    for part in g.eigh(x):
        check(part)
    torch.testing.assert_close(g.svdvals(x)[good], torch.linalg.svdvals(x[good]))
    sym = (x[good] + x[good].mT) / 2
    torch.testing.assert_close(g.eigvalsh(x)[good], torch.linalg.eigvalsh(sym))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_all_non_finite_input_never_raises(dtype):
    for fill in BAD:
        x = torch.full((2, 3, 3), fill, dtype=dtype)
        assert g.svdvals(x).isnan().all()
        assert all(t.isnan().all() for t in g.svd(x))
        assert g.eigvalsh(x).isnan().all()
        assert all(t.isnan().all() for t in g.eigh(x))


def test_gradients_match_torch():
    x = _x(4, 3, scale=5.0)
    torch.testing.assert_close(
        torch.func.grad(lambda t: g.svdvals(t).sum())(x),
        torch.func.grad(lambda t: torch.linalg.svdvals(t).sum())(x),
    )
    w = _x(4, seed=1)
    torch.testing.assert_close(
        torch.func.grad(lambda t: (g.eigvalsh(t) * w).sum())(_x(4, 4)),
        torch.func.grad(lambda t: (torch.linalg.eigvalsh((t + t.mT) / 2) * w).sum())(_x(4, 4)),
    )


def test_batches_under_vmap():
    x = _x(5, 4, 4, scale=1e3)
    x[2, 0, 0] = math.nan
    torch.testing.assert_close(torch.vmap(g.svdvals)(x), g.svdvals(x), equal_nan=True)
    torch.testing.assert_close(torch.vmap(g.eigvalsh)(x), g.eigvalsh(x), equal_nan=True)
