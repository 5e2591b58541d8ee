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


def test_banded_is_the_band_and_tridiagonal_is_banded_1_1():
    x = torch.randn(5, 6)
    out = fs.Banded(1, 1).apply(x)
    i, j = torch.meshgrid(torch.arange(5), torch.arange(6), indexing="ij")
    inside = (j - i).abs() <= 1
    assert torch.equal(out, torch.where(inside, x, 0.0))


@pytest.mark.parametrize(
    ("structure", "n", "size"),
    [
        (fs.UpperTriangular(packed=True), 5, 15),
        (fs.UpperTriangular(1, packed=True), 5, 10),
        (fs.LowerTriangular(-2, packed=True), 5, 6),
        (fs.Diagonal(packed=True), 5, 5),
        (fs.Banded(1, 1, packed=True), 5, 13),
        (fs.Banded(0, 2, packed=True), 4, 9),
    ],
)
def test_packed_sizes_and_row_major_order(structure, n, size):
    raw = torch.arange(1.0, size + 1)
    out = structure.apply(raw)
    assert out.shape == (n, n)
    nonzero = out.flatten()[out.flatten() != 0]
    assert torch.equal(nonzero, raw)  # free entries, row by row
    assert torch.equal(structure.inverse(out), raw)
    full = type(structure)(**{**structure.__dict__, "packed": False})
    assert torch.equal(full.project(out), out)


def test_packed_has_no_dead_entries_in_the_gradient():
    raw = torch.randn(4, 10)
    g = torch.func.vmap(torch.func.grad(lambda r: fs.UpperTriangular(packed=True).apply(r).sum()))(
        raw
    )
    assert torch.equal(g, torch.ones(4, 10))


def test_packed_length_that_fits_no_matrix():
    with pytest.raises(ValueError, match=r"last dim must be n\(n\+1\)/2 .* 7 fits no n"):
        fs.UpperTriangular(packed=True).apply(torch.ones(7))


def test_block_diagonal_blocks():
    out = fs.BlockDiagonal((2, 1, 3)).apply(torch.ones(6, 6))
    expected = torch.block_diag(torch.ones(2, 2), torch.ones(1, 1), torch.ones(3, 3))
    assert torch.equal(out, expected)
    with pytest.raises(ValueError, match=r"needs a matrix of shape \(6, 6\).*got shape \(5, 5\)"):
        fs.BlockDiagonal((2, 1, 3)).apply(torch.ones(5, 5))


def test_masked_accepts_tensor_or_lists_and_is_hashable():
    mask = torch.tensor([[True, False], [False, True]])
    a, b = fs.Masked(mask), fs.Masked([[True, False], [False, True]])
    assert a == b
    assert hash(a) == hash(b)
    assert torch.equal(a.apply(torch.ones(3, 2, 2)), torch.eye(2).expand(3, 2, 2))


@pytest.mark.parametrize(
    ("factory", "error", "message"),
    [
        (lambda: fs.Banded(-1, 0), ValueError, "Banded: lower must be an int >= 0, got -1"),
        (lambda: fs.Banded(0, 1.5), TypeError, "Banded: upper must be an int"),
        (lambda: fs.BlockDiagonal(()), ValueError, "BlockDiagonal: sizes must be a non-empty"),
        (
            lambda: fs.BlockDiagonal((2, 0)),
            ValueError,
            r"BlockDiagonal: sizes\[1\] must be an int >= 1, got 0",
        ),
        (lambda: fs.Masked([[1, 0]]), TypeError, "Masked: mask must be"),
        (lambda: fs.Masked(torch.ones(2, 2)), TypeError, "Masked: mask must be .* 2-D bool"),
        (lambda: fs.Masked([[True], [True, False]]), ValueError, "Masked: mask must be"),
    ],
)
def test_bad_hyperparameters(factory, error, message):
    with pytest.raises(error, match=message):
        factory()
