"""Masks: exactly the torch.triu / torch.tril pattern, any rectangle, any offset."""

import pytest
import torch

import functional_struct as fs


@pytest.mark.parametrize("diagonal", [-2, -1, 0, 1, 3])
@pytest.mark.parametrize("shape", [(4, 4), (3, 6), (6, 3), (2, 3, 5)])
def test_matches_torch_pattern(shape, diagonal):
    x = torch.randn(shape)
    assert torch.equal(fs.UpperTriangular(diagonal).apply(x), torch.triu(x, diagonal))
    assert torch.equal(fs.LowerTriangular(diagonal).apply(x), torch.tril(x, diagonal))


@pytest.mark.parametrize("shape", [(4, 4), (3, 6), (6, 3)])
def test_diagonal_keeps_exactly_the_main_diagonal(shape):
    x = torch.randn(shape)
    out = fs.Diagonal().apply(x)
    k = min(shape)
    assert torch.equal(out.diagonal(), x.diagonal())
    assert int((out != 0).sum()) == k
    assert out.shape == x.shape


def test_contains_uses_tolerance_and_rejects_nonfinite():
    upper = fs.UpperTriangular()
    x = torch.triu(torch.ones(3, 3))
    x[2, 0] = 1e-6
    assert upper.contains(x)
    assert not upper.contains(x, atol=1e-8)
    x[0, 1] = float("inf")
    assert not upper.contains(x)


def test_gradient_is_zero_exactly_on_masked_entries():
    raw = torch.randn(4, 4)
    g = torch.func.grad(lambda r: fs.UpperTriangular(1).apply(r).sum())(raw)
    assert torch.equal(g, torch.triu(torch.ones(4, 4), 1))


def test_init_is_a_member_with_linear_layer_scale():
    raw = fs.LowerTriangular().init((2000, 8, 8), generator=torch.Generator().manual_seed(0))
    assert torch.equal(raw, torch.tril(raw))
    assert abs(raw[:, 4, 0].std().item() - 8**-0.5) < 0.02


@pytest.mark.parametrize("bad", [1.5, "0", True, None])
def test_offset_must_be_int(bad):
    with pytest.raises(TypeError, match="UpperTriangular: diagonal must be an int"):
        fs.UpperTriangular(bad)
