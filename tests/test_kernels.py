"""The shared linear-algebra kernels: known values, round trips, never raising."""

import math

import pytest
import torch
import torch.nn.functional as F

from functional_struct import _kernels as k

F64 = torch.float64
CPU = torch.device("cpu")
BAD = [math.nan, math.inf, -math.inf]


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _spd(n=4, batch=(3,), seed=0):
    a = torch.randn(*batch, n, n, generator=_gen(seed), dtype=F64)
    return a @ a.mT + 0.1 * torch.eye(n, dtype=F64)


def test_assembly_kernels_known_values():
    x = torch.arange(9.0, dtype=F64).reshape(3, 3)
    d = torch.tensor([10.0, 20.0, 30.0], dtype=F64)
    assert torch.equal(k.tril_with_diagonal(x, d), torch.tril(x, -1) + torch.diag(d))
    sym = k.symmetric_from_lower(x, d)
    assert torch.equal(sym, sym.mT)
    assert torch.equal(sym.diagonal(), d)
    assert torch.equal(torch.tril(sym, -1), torch.tril(x, -1))
    assert torch.equal(k.eye_like(torch.zeros(2, 4, 3)), torch.eye(3))
    shift = torch.tensor([1.0, 2.0], dtype=F64)
    out = k.add_to_diagonal(torch.zeros(2, 3, 3, dtype=F64), shift)
    assert torch.equal(out, shift[:, None, None] * torch.eye(3, dtype=F64))


def test_flip_first_column_and_largest_entry_signs():
    q = torch.ones(2, 3, 3)
    flipped = k.flip_first_column(q, torch.tensor([True, False])[:, None, None])
    assert torch.equal(flipped[0, :, 0], -torch.ones(3))
    assert torch.equal(flipped[1], q[1])
    vectors = torch.tensor([[0.6, -0.1], [-0.8, -0.2]])
    signed = vectors * k.largest_entry_signs(vectors)
    assert (signed.gather(0, signed.abs().argmax(0, keepdim=True)) > 0).all()


def test_inverse_softplus_round_trip_and_edges():
    x = torch.linspace(-30, 30, 61, dtype=F64)
    torch.testing.assert_close(k.inverse_softplus(F.softplus(x)), x, atol=1e-8, rtol=1e-12)
    assert k.inverse_softplus(torch.tensor(0.0)) == -math.inf
    assert k.inverse_softplus(torch.tensor(math.nan)).isnan()


def test_rounding_level_floor_formulas():
    assert float(k.rounding_level(torch.tensor(1.0), 3)) == 3 * torch.finfo(torch.float32).eps
    level = k.rounding_level(torch.tensor(1.0, dtype=F64), 3, torch.float32)
    assert level.dtype == F64
    assert float(level) == 3 * torch.finfo(torch.float32).eps
    # base + t I with t = floor + r mean(base): floor_from_mean recovers t from the mean
    base = torch.tensor([0.5, 1.0, 4.5], dtype=F64)
    floor, r = 1e-3, 0.1
    t = floor + r * base.mean()
    torch.testing.assert_close(k.floor_from_mean((base + t).mean(), floor, r), t)
    margin = k.floor_margin(torch.tensor([1e-6, 1.0]), torch.tensor([1.0, 1.0]), 1e-4, 1e-4)
    torch.testing.assert_close(margin, torch.tensor([5e-7, 2e-4]))


def test_lift_to_floor_fixes_lifted_spectra_and_reaches_the_floor():
    values = torch.tensor([[-1.0, 0.0, 2.0, 5.0]], dtype=F64)
    lifted = k.lift_to_floor(values, 1e-2, 0.05)
    t = k.floor_from_mean(lifted.mean(-1, keepdim=True), 1e-2, 0.05)
    # three fixed steps settle the floor to a relative r^3
    assert (lifted >= t * (1 - 0.05**3)).all()
    torch.testing.assert_close(k.lift_to_floor(lifted, 1e-2, 0.05), lifted, atol=0, rtol=1e-4)
    assert torch.equal(lifted[..., 2:], values[..., 2:])


def test_spectral_reconstructions_round_trip():
    a = _spd()
    values, vectors = torch.linalg.eigh(a)
    torch.testing.assert_close(k.eigen_reconstruct(vectors, values), a)
    m = torch.randn(3, 5, 4, generator=_gen(1), dtype=F64)
    u, s, vh = torch.linalg.svd(m, full_matrices=False)
    torch.testing.assert_close(k.svd_reconstruct(u, s, vh), m)


def test_truncated_svd_is_the_best_rank_r_part():
    left = torch.randn(3, 6, 2, generator=_gen(2), dtype=F64)
    right = torch.randn(3, 5, 2, generator=_gen(3), dtype=F64)
    m = left @ right.mT
    u, s, v = k.truncated_svd(m, 2)
    assert u.shape == (3, 6, 2)
    assert s.shape == (3, 2)
    assert v.shape == (3, 5, 2)
    torch.testing.assert_close(k.svd_reconstruct(u, s, v.mT), m)


def test_polar_and_polar_factor():
    m = torch.randn(4, 3, 3, generator=_gen(4), dtype=F64)
    q, p = k.polar(m)
    torch.testing.assert_close(q @ p, m)
    torch.testing.assert_close(q.mT @ q, torch.eye(3, dtype=F64).expand(4, 3, 3))
    torch.testing.assert_close(p, p.mT)
    assert (torch.linalg.eigvalsh(p) >= -1e-12).all()
    torch.testing.assert_close(k.polar_factor(m), q)


def test_flip_smallest_where_reflection_gives_rotations():
    m = torch.randn(8, 3, 3, generator=_gen(5), dtype=F64)
    u, _, vh = torch.linalg.svd(m)
    rotation = k.flip_smallest_where_reflection(u, vh) @ vh
    torch.testing.assert_close(torch.linalg.det(rotation), torch.ones(8, dtype=F64))


def test_boundary_cholesky_inside_on_and_outside_the_boundary():
    a = _spd()
    torch.testing.assert_close(k.boundary_cholesky(a, a), torch.linalg.cholesky(a))
    v = torch.randn(4, 2, generator=_gen(6), dtype=F64)
    singular = v @ v.mT  # rank 2: on the boundary
    factor = k.boundary_cholesky(singular, singular)
    assert torch.isfinite(factor).all()
    torch.testing.assert_close(factor @ factor.mT, singular, atol=1e-12, rtol=0)
    # a little below zero: only within the margin
    below = singular - 1e-8 * torch.eye(4, dtype=F64)
    assert k.boundary_cholesky(below, singular).isnan().all()
    assert torch.isfinite(k.boundary_cholesky(below, singular, 1e-6)).all()


def test_project_spectrum_to_floor():
    a = torch.diag(torch.tensor([-1.0, 0.0, 3.0], dtype=F64))
    p = k.project_spectrum_to_floor(a, 0.5, 0.0)
    torch.testing.assert_close(p, torch.diag(torch.tensor([0.5, 0.5, 3.0], dtype=F64)))
    torch.testing.assert_close(k.project_spectrum_to_floor(p, 0.5, 0.0), p)


def test_draws_are_seeded_and_in_their_sets():
    shape = torch.Size((5, 4, 3))
    q = k.haar_orthogonal(shape, _gen(7), F64, CPU)
    assert torch.equal(q, k.haar_orthogonal(shape, _gen(7), F64, CPU))
    torch.testing.assert_close(q.mT @ q, torch.eye(3, dtype=F64).expand(5, 3, 3))
    raw = k.haar_raw(lambda x: x, torch.Size((6, 3, 3)), _gen(8), F64, CPU, rotations=True)
    torch.testing.assert_close(torch.linalg.det(raw), torch.ones(6, dtype=F64))
    factor = k.lower_factor_raw(torch.Size((2, 4, 4)), _gen(9), F64, CPU)
    torch.testing.assert_close(
        F.softplus(factor.diagonal(dim1=-2, dim2=-1)), torch.ones(2, 4, dtype=F64)
    )
    assert torch.equal(torch.triu(factor, 1), torch.zeros_like(factor))


def test_draw_in_range_picks_the_first_candidate_in_range_and_clamps_otherwise():
    def draw(shape):  # element 0: out of range, then in range; element 1: never (NaN, 1e9)
        values = torch.tensor([[500.0, math.nan], [1.0, 1e9]])
        return values.reshape(*shape, 1, 1)

    out = k.draw_in_range(draw, (2,), rounds=2)
    assert torch.equal(out.flatten(), torch.tensor([1.0, 0.0]))
    parts = k.draw_in_range(lambda shape: (draw(shape), draw(shape)), (2,), rounds=2)
    assert isinstance(parts, tuple)
    assert torch.equal(parts[1].flatten(), torch.tensor([1.0, 0.0]))


@pytest.mark.parametrize("bad", BAD)
def test_decomposition_kernels_never_raise_on_non_finite_input(bad):
    a = _spd(batch=(2,))
    a[0, 1, 2] = bad

    def nan0(t):  # NaN for the bad matrix, finite for the good one
        return bool(t[0].isnan().all()) and bool(torch.isfinite(t[1]).all())

    assert nan0(k.truncated_svd(a, 2)[1])
    assert nan0(k.polar(a)[0])
    assert nan0(k.polar_factor(a))
    assert nan0(k.project_spectrum_to_floor(a, 1e-3, 0.0))
    factor = k.boundary_cholesky(a, a)
    assert torch.isfinite(factor[1]).all()


def test_kernels_batch_under_vmap():
    a = _spd(batch=(4,))
    batched = torch.vmap(lambda x: k.boundary_cholesky(x, x))(a)
    torch.testing.assert_close(batched, k.boundary_cholesky(a, a))
    batched = torch.vmap(lambda x: k.project_spectrum_to_floor(x, 1.0, 0.1))(a)
    torch.testing.assert_close(batched, k.project_spectrum_to_floor(a, 1.0, 0.1))


def test_init_takes_the_first_candidate_in_range_and_clamps_the_rest():
    from functional_struct._orthogonal import draw_in_range

    def draw(shape):  # candidate j of element i is i + 100 j: element 0 in range at j = 0, ...
        i = torch.arange(shape[1], dtype=torch.float64)
        j = torch.arange(shape[0], dtype=torch.float64)[:, None]
        return (i + 100 * j)[..., None, None].expand(*shape, 2, 2)

    out = draw_in_range(draw, (3,), bound=150.0, rounds=2)
    torch.testing.assert_close(out[:, 0, 0], torch.tensor([0.0, 1.0, 2.0], dtype=torch.float64))
    out = draw_in_range(lambda shape: 200 + draw(shape), (2,), bound=150.0, rounds=2)
    torch.testing.assert_close(out[:, 0, 0], torch.tensor([150.0, 150.0], dtype=torch.float64))
