"""Linear subspaces: each set's own mathematics, packed layouts, orthogonal projections."""

import pytest
import torch

import functional_struct as fs

GEN = torch.Generator().manual_seed(0)


def _x(*shape):
    return torch.randn(*shape, generator=GEN, dtype=torch.float64)


def test_symmetric_and_skew_decompose_any_square_matrix():
    x = _x(3, 5, 5)
    sym, skew = fs.Symmetric().project(x), fs.SkewSymmetric().project(x)
    torch.testing.assert_close(sym + skew, x)
    assert torch.equal(sym, sym.mT)
    assert torch.equal(skew, -skew.mT)
    assert torch.equal(skew.diagonal(dim1=-2, dim2=-1), torch.zeros(3, 5, dtype=torch.float64))
    # the two subspaces are orthogonal complements
    assert (sym * skew).sum((-2, -1)).abs().max() < 1e-12


@pytest.mark.parametrize("shape", [(4, 4), (3, 6), (6, 2)])
def test_toeplitz_is_constant_along_diagonals(shape):
    t = fs.Toeplitz().project(_x(*shape))
    m, n = shape
    for k in range(-(m - 1), n):
        d = t.diagonal(k)
        assert torch.allclose(d, d[0].expand_as(d))


@pytest.mark.parametrize("shape", [(4, 4), (3, 6)])
def test_hankel_is_constant_along_anti_diagonals(shape):
    h = fs.Hankel().project(_x(*shape))
    flipped = h.flip(-1)
    m, n = shape
    for k in range(-(m - 1), n):
        d = flipped.diagonal(k)
        assert torch.allclose(d, d[0].expand_as(d))


def test_circulant_rows_are_cyclic_shifts_and_diagonalized_by_fft():
    c = fs.Circulant(packed=True).apply(_x(6))
    for i in range(6):
        assert torch.equal(c[i], torch.roll(c[0], i))
    # circulant matrices commute
    d = fs.Circulant(packed=True).apply(_x(6))
    torch.testing.assert_close(c @ d, d @ c)


def test_projection_is_orthogonal_least_squares():
    """project(x) - x is orthogonal to every member: the Frobenius-nearest member."""
    for s in [fs.Toeplitz(), fs.Hankel(), fs.Circulant(), fs.Symmetric(), fs.SkewSymmetric()]:
        x = _x(5, 5)
        residual = s.project(x) - x
        member = s.project(_x(5, 5))
        assert abs((residual * member).sum().item()) < 1e-10, s


@pytest.mark.parametrize(
    ("structure", "size", "first_row"),
    [
        (fs.Symmetric(packed=True), 6, [1.0, 2.0, 4.0]),
        (fs.SkewSymmetric(packed=True), 3, [0.0, -1.0, -2.0]),
        (fs.Toeplitz(packed=True), 5, [3.0, 4.0, 5.0]),
        (fs.Hankel(packed=True), 5, [1.0, 2.0, 3.0]),
        (fs.Circulant(packed=True), 3, [1.0, 2.0, 3.0]),
    ],
)
def test_packed_layouts(structure, size, first_row):
    raw = torch.arange(1.0, size + 1)
    out = structure.apply(raw)
    assert out.shape == (3, 3)
    assert out[0].tolist() == first_row
    assert torch.equal(structure.apply(structure.inverse(out)), out)


def test_packed_inverse_of_a_non_member_is_its_least_squares_fit():
    s = fs.Toeplitz(packed=True)
    x = _x(4, 4)
    torch.testing.assert_close(s.apply(s.inverse(x)), s.project(x))


def test_full_form_gradient_stays_in_the_subspace():
    g = torch.func.grad(lambda r: (fs.Symmetric().apply(r) * _x(4, 4)).sum())(_x(4, 4))
    assert torch.equal(g, g.mT)
