"""Orthogonal: every method to float precision, both components, tall frames, Haar init."""

import math

import pytest
import torch

import functional_struct as fs

Q = fs.Orthogonal()
METHODS = ["cayley", "expm", "householder"]


def _orthogonality_error(q):
    eye = torch.eye(q.shape[-1], dtype=q.dtype)
    return (q.mT @ q - eye).abs().amax().item()


@pytest.mark.parametrize(("dtype", "tol"), [(torch.float32, 1e-5), (torch.float64, 1e-13)])
@pytest.mark.parametrize("n", [8, 64, 256])
@pytest.mark.parametrize("method", METHODS)
def test_orthogonal_to_float_precision_from_init(method, n, dtype, tol):
    s = fs.Orthogonal(method=method)
    q = s.apply(s.init((2, n, n), generator=torch.Generator().manual_seed(n), dtype=dtype))
    assert _orthogonality_error(q) < tol * math.sqrt(n)


@pytest.mark.parametrize("method", ["cayley", "householder"])
@pytest.mark.parametrize("shape", [(7, 3), (64, 8), (5, 1)])
def test_tall_frames_round_trip(method, shape):
    s = fs.Orthogonal(method=method)
    gen = torch.Generator().manual_seed(5)
    frames = s.apply(s.init((10, *shape), generator=gen, dtype=torch.float64))
    assert _orthogonality_error(frames) < 1e-13
    torch.testing.assert_close(s.apply(s.inverse(frames)), frames)
    # Any orthonormal frame is reached: the polar factor of a Gaussian, say.
    other = s.project(torch.randn(10, *shape, generator=gen, dtype=torch.float64))
    torch.testing.assert_close(s.apply(s.inverse(other)), other)


def test_tall_raw_of_the_cayley_map_is_its_chart():
    """Tall Cayley: the raw is the strict lower triangle of the top block and the bottom block,
    and inverse recovers exactly those entries (r(n - r) + r(r - 1)/2 numbers)."""
    gen = torch.Generator().manual_seed(6)
    raw = torch.tril(torch.randn(6, 4, generator=gen, dtype=torch.float64), -1)
    s = fs.Orthogonal()
    torch.testing.assert_close(s.inverse(s.apply(raw)), raw)


def test_expm_is_the_matrix_exponential():
    gen = torch.Generator().manual_seed(7)
    raw = 0.3 * torch.randn(8, 6, 6, generator=gen, dtype=torch.float64).tril(-1)
    skew = raw - raw.mT  # raw[0, 0] = 0: determinant +1
    s = fs.Orthogonal(method="expm")
    torch.testing.assert_close(s.apply(raw), torch.linalg.matrix_exp(skew))
    # Angles below pi: the principal logarithm gives the raw back.
    torch.testing.assert_close(s.inverse(torch.linalg.matrix_exp(skew)).tril(-1), raw)


def test_wide_and_tall_expm_are_refused():
    with pytest.raises(ValueError, match=r"rows >= columns.*\(3, 5\)"):
        Q.apply(torch.zeros(3, 5))
    with pytest.raises(ValueError, match=r"'expm' needs a square matrix.*\(5, 3\)"):
        fs.Orthogonal(method="expm").init((5, 3))


@pytest.mark.parametrize("scale", [1e-3, 1.0, 10.0, 100.0])
def test_orthogonal_in_float32_over_the_documented_range(scale):
    raw = scale * torch.randn(16, 16, 16, generator=torch.Generator().manual_seed(0))
    assert Q.contains(Q.apply(raw)).all()


@pytest.mark.parametrize("method", METHODS)
def test_both_determinants_are_reached_and_inverted(method):
    Q = fs.Orthogonal(method=method)
    gen = torch.Generator().manual_seed(1)
    raw = torch.randn(200, 5, 5, generator=gen, dtype=torch.float64)
    det = torch.linalg.det(Q.apply(raw))
    torch.testing.assert_close(det.abs(), torch.ones(200, dtype=torch.float64))
    assert (det < 0).any()
    assert (det > 0).any()
    torch.testing.assert_close(torch.sign(det), torch.where(raw[:, 0, 0] < 0, -1.0, 1.0).double())
    members = Q.apply(raw)
    torch.testing.assert_close(Q.apply(Q.inverse(members)), members)


@pytest.mark.parametrize("method", METHODS)
def test_haar_init_trace_statistics(method):
    """For Haar Q on O(n), E[tr Q] = 0 and E[tr(Q)²] = 1 (n >= 2); a biased init breaks these."""
    Q = fs.Orthogonal(method=method)
    n, count = 6, 4000
    q = Q.apply(
        Q.init((count, n, n), generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    )
    trace = q.diagonal(dim1=-2, dim2=-1).sum(-1)
    assert abs(trace.mean().item()) < 5 / math.sqrt(count)
    assert abs(trace.square().mean().item() - 1.0) < 0.15
    det = torch.linalg.det(q)
    assert 0.4 < (det > 0).double().mean().item() < 0.6


def test_project_is_the_polar_factor():
    gen = torch.Generator().manual_seed(3)
    a = torch.randn(4, 5, 5, generator=gen, dtype=torch.float64)
    p = Q.project(a)
    assert _orthogonality_error(p) < 1e-12
    # polar: a = p @ s with s symmetric positive semidefinite
    s = p.mT @ a
    torch.testing.assert_close(s, s.mT)
    assert (torch.linalg.eigvalsh(s) > -1e-10).all()


def test_eigenvalue_minus_one_is_out_of_reach():
    """Documented: Cayley misses rotations with eigenvalue -1, such as -I; expm has no principal
    logarithm there; householder misses a column -e_j. inverse says so with NaN."""
    minus = -torch.eye(4, dtype=torch.float64)
    for method in METHODS:
        assert not torch.isfinite(fs.Orthogonal(method=method).inverse(minus)).all(), method


def test_unknown_method():
    with pytest.raises(
        ValueError,
        match="Orthogonal: method must be one of 'cayley', 'expm', 'householder', got 'qr'",
    ):
        fs.Orthogonal(method="qr")


def test_special_orthogonal_is_rotations_only():
    s = fs.SpecialOrthogonal()
    raw = torch.randn(100, 4, 4, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    det = torch.linalg.det(s.apply(raw))
    torch.testing.assert_close(det, torch.ones(100, dtype=torch.float64))
    reflection = torch.diag(torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64))
    assert fs.Orthogonal().contains(reflection)
    assert not s.contains(reflection)


def test_special_orthogonal_project_is_the_nearest_rotation():
    s = fs.SpecialOrthogonal()
    a = torch.diag(torch.tensor([-3.0, 2.0, 1.0], dtype=torch.float64))
    # the nearest rotation flips the direction of the smallest singular value (the third axis)
    torch.testing.assert_close(s.project(a), torch.diag(torch.tensor([-1.0, 1.0, -1.0]).double()))
    x = torch.randn(50, 3, 3, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    p = s.project(x)
    assert s.contains(p).all()
    # no rotation from the Haar sample is closer than the projection
    others = s.apply(s.init((50, 3, 3), dtype=torch.float64))
    assert ((p - x).norm(dim=(-2, -1)) <= (others - x).norm(dim=(-2, -1)) + 1e-12).all()


@pytest.mark.parametrize("method", ["cayley", "householder"])
def test_tall_init_is_uniform_on_the_stiefel_manifold(method):
    """For Haar frames Q (n x k), E[Q Qᵀ] = (k / n) I and E[Q] = 0; a biased init breaks both."""
    n, k, count = 6, 2, 4000
    s = fs.Orthogonal(method=method)
    q = s.apply(
        s.init((count, n, k), generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    )
    projector = (q @ q.mT).mean(0)
    torch.testing.assert_close(
        projector, (k / n) * torch.eye(n, dtype=torch.float64), atol=0.03, rtol=0
    )
    assert q.mean(0).abs().max() < 5 / math.sqrt(count)


@pytest.mark.parametrize(
    "structure",
    [fs.Orthogonal(method=m) for m in METHODS]
    + [fs.SpecialOrthogonal(), fs.FixedRank(5), fs.Invertible()],
    ids=repr,
)
def test_init_stays_where_the_chart_is_precise(structure):
    """A Haar draw near a chart's edge (eigenvalue -1 for Cayley) has a raw of any size, so init
    redraws those: kept, these 4000 draws at n = 5 would have 26 to 60 raws with an entry above
    100 (up to 4e4), float32 round trips would lose up to 2.6e-4, and about one in 20000
    Householder draws would be inf."""
    raw = structure.init((4000, 5, 5), generator=torch.Generator().manual_seed(5))
    parts = raw if isinstance(raw, tuple) else (raw,)
    for part in parts:
        assert (part.abs() <= 100).all()
    value = structure.apply(raw)
    back = structure.apply(structure.inverse(value))
    assert ((back - value).abs().amax((-2, -1)) / value.abs().amax((-2, -1))).max() < 1e-4


HUGE = {torch.float32: 1e8, torch.float64: 1e16}
"""Raw scales where the unit diagonal of I - A is lost: with a raising inv, float32 Cayley would
raise LinAlgError for 30 of 200 raws of 5 x 5 at 1e8, float64 for 2 of 200 at 1e16."""


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    "structure",
    [fs.Orthogonal(method=m) for m in METHODS] + [fs.SpecialOrthogonal()],
    ids=repr,
)
def test_apply_never_raises_on_huge_raw(structure, dtype):
    gen = torch.Generator().manual_seed(12)
    for scale in (HUGE[dtype], 1e30, torch.finfo(dtype).max):
        big = torch.finfo(dtype).max
        raw = (scale * torch.randn(200, 5, 5, generator=gen, dtype=dtype)).clamp(-big, big)
        value = structure.apply(raw)
        assert not torch.isinf(value).any()
        batched = torch.vmap(structure.apply)(raw[:20])
        assert not torch.isinf(batched).any()
    # NaN raw gives NaN values, never an exception
    assert torch.isnan(structure.apply(torch.full((5, 5), math.nan, dtype=dtype))).all()


@pytest.mark.slow
def test_apply_on_huge_raw_compiles():
    raw = 1e8 * torch.randn(50, 5, 5, generator=torch.Generator().manual_seed(13))
    eager = fs.Orthogonal().apply(raw)
    compiled = torch.compile(fs.Orthogonal().apply, fullgraph=True)(raw)
    torch.testing.assert_close(compiled, eager, equal_nan=True, atol=1e-3, rtol=0)
