"""Hermitian, SkewHermitian, HermitianPositiveDefinite and DensityMatrix beyond the laws."""

import pytest
import torch

import functional_struct as fs
from functional_struct import _guards

COMPLEX = [
    pytest.param(torch.complex64, id="complex64"),
    pytest.param(torch.complex128, id="complex128"),
]


def test_hermitian_packed_reads_the_lower_triangle_and_real_diagonal():
    s = fs.Hermitian(packed=True)
    raw = torch.randn(6, dtype=torch.complex128)
    h = s.apply(raw)
    assert torch.equal(h, h.mH)
    assert torch.equal(h.diagonal().imag, torch.zeros(3, dtype=torch.float64))
    back = s.inverse(h)
    assert torch.allclose(s.apply(back), h)
    assert torch.allclose(back.imag[[0, 2, 5]], torch.zeros(3, dtype=torch.float64))


def test_skew_hermitian_exponentials_are_unitary():
    a = fs.SkewHermitian().apply(torch.randn(3, 5, 5, dtype=torch.complex128))
    assert torch.equal(a, -a.mH)
    assert fs.Unitary().contains(torch.linalg.matrix_exp(a)).all()


def test_hermitian_projection_is_orthogonal_in_the_real_inner_product():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4, 4, generator=gen, dtype=torch.complex128)
    p = fs.Hermitian().project(x)
    for _ in range(20):
        member = fs.Hermitian().apply(torch.randn(4, 4, generator=gen, dtype=torch.complex128))
        assert abs(torch.vdot((x - p).flatten(), member.flatten()).real) < 1e-12


@pytest.mark.parametrize("dtype", COMPLEX)
@pytest.mark.parametrize("n", [1, 8, 32, 64])
@pytest.mark.parametrize("scale", [0.0, 1e-30, 1.0, 100.0, 1e4])
def test_hermitian_positive_definite_passes_cholesky_for_extreme_raw(n, scale, dtype):
    s = fs.HermitianPositiveDefinite()
    gen = torch.Generator().manual_seed(n)
    raws = [
        scale * torch.randn(n, n, generator=gen, dtype=dtype),
        torch.full((n, n), scale, dtype=dtype),
        scale * torch.randn(n, 1, generator=gen, dtype=dtype) * torch.randn(1, n, dtype=dtype),
    ]
    for raw in raws:
        a = s.apply(raw)
        assert torch.linalg.cholesky_ex(a).info == 0
        assert torch.equal(a, a.mH) or (a - a.mH).abs().max() <= 1e-6 * a.abs().max()
        assert s.contains(a)


def test_hermitian_positive_definite_floor_and_round_trip():
    s = fs.HermitianPositiveDefinite(floor=0.1)
    raw = torch.randn(5, 4, 4, dtype=torch.complex128)
    a = s.apply(raw)
    assert (torch.linalg.eigvalsh(a) >= 0.1 - 1e-12).all()
    back = s.inverse(a)
    assert torch.allclose(s.apply(back), a, atol=1e-12)
    assert torch.allclose(torch.tril(back, -1), torch.tril(raw, -1), atol=1e-10)


def test_hermitian_positive_definite_refuses_the_exponential_method():
    with pytest.raises(ValueError, match="HermitianPositiveDefinite.*method"):
        fs.HermitianPositiveDefinite(method="expm")


@pytest.mark.parametrize("rank", [None, 1, 2])
def test_density_matrices_are_states(rank):
    s = fs.DensityMatrix(rank=rank)
    raw = s.init((10, 5, 5), generator=torch.Generator().manual_seed(0), dtype=torch.complex128)
    rho = s.apply(raw)
    values = torch.linalg.eigvalsh(rho)
    assert torch.allclose(rho, rho.mH)
    assert torch.allclose(
        rho.diagonal(dim1=-2, dim2=-1).real.sum(-1), torch.ones(10, dtype=torch.float64)
    )
    assert (values > -1e-12).all()
    if rank is not None:
        assert (values[..., : 5 - rank].abs() < 1e-12).all()
    assert torch.allclose(s.apply(s.inverse(rho)), rho, atol=1e-12)


def test_density_matrix_of_zero_raw():
    mixed = fs.DensityMatrix().apply(torch.zeros(3, 3, dtype=torch.complex64))
    assert torch.allclose(mixed, torch.eye(3, dtype=torch.complex64) / 3)
    pure = fs.DensityMatrix(rank=1).apply(torch.zeros(3, 1, dtype=torch.complex64))
    assert fs.DensityMatrix(rank=1).contains(pure)


def test_density_projection_is_the_nearest_state():
    """The projection onto a closed convex set: ⟨x - p, y - p⟩ <= 0 for every member y."""
    gen = torch.Generator().manual_seed(0)
    s = fs.DensityMatrix()
    x = fs.Hermitian().apply(torch.randn(6, 6, generator=gen, dtype=torch.complex128))
    p = s.project(x)
    assert s.contains(p)
    members = s.apply(s.init((500, 6, 6), generator=gen, dtype=torch.complex128))
    pure = fs.DensityMatrix(rank=1)
    members = torch.cat(
        [members, pure.apply(pure.init((500, 6, 6), generator=gen, dtype=torch.complex128))]
    )
    inner = ((x - p).conj() * (members - p)).sum((-2, -1)).real
    assert (inner <= 1e-12).all()


def test_rank_limited_projection_keeps_the_largest_eigenvalues():
    x = torch.diag(torch.tensor([0.5, 0.3, 0.15, 0.05], dtype=torch.complex128))
    p = fs.DensityMatrix(rank=2).project(x)
    assert torch.allclose(
        p.diagonal().real, torch.tensor([0.6, 0.4, 0.0, 0.0], dtype=torch.float64)
    )


def test_density_contains_says_no_to_negative_and_wrong_trace():
    s = fs.DensityMatrix()
    bad = torch.diag(torch.tensor([1.2, -0.2], dtype=torch.complex128))
    assert not s.contains(bad)
    assert not s.contains(torch.eye(2, dtype=torch.complex128))
    assert torch.isnan(s.inverse(bad)).all()
    assert _guards.eigvalsh(s.project(bad)).min() >= 0


@pytest.mark.parametrize("dtype", COMPLEX)
@pytest.mark.parametrize("rank", [None, 1, 2])
def test_density_projection_and_apply_far_beyond_unit_scale(rank, dtype):
    """Eigenvalues far above 1 / eps still project onto states; raw of any finite scale maps
    to a state (the map ignores the raw's scale)."""
    s = fs.DensityMatrix(rank=rank)
    gen = torch.Generator().manual_seed(0)
    for scale in (1e8, 1e30):
        x = scale * torch.randn(3, 8, 8, generator=gen, dtype=dtype)
        assert s.contains(s.project(x)).all()
        raw = scale * s.init((3, 8, 8), generator=gen, dtype=dtype)
        assert s.contains(s.apply(raw)).all()


def test_init_with_a_refused_dtype_says_to_pass_another():
    with pytest.raises(
        TypeError,
        match=r"Unitary.*init: needs a dtype complex64 or complex128, got float32\. Pass one",
    ):
        fs.Unitary().init((3, 3), dtype=torch.float32)
