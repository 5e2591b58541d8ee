"""Orthogonal: orthogonality to float precision, both components, Haar init, polar projection."""

import math

import pytest
import torch

import functional_struct as fs

Q = fs.Orthogonal()


def _orthogonality_error(q):
    eye = torch.eye(q.shape[-1], dtype=q.dtype)
    return (q.mT @ q - eye).abs().amax().item()


@pytest.mark.parametrize(("dtype", "tol"), [(torch.float32, 1e-5), (torch.float64, 1e-13)])
@pytest.mark.parametrize("n", [8, 64, 256])
def test_orthogonal_to_float_precision_from_init(n, dtype, tol):
    q = Q.apply(Q.init((2, n, n), generator=torch.Generator().manual_seed(n), dtype=dtype))
    assert _orthogonality_error(q) < tol * math.sqrt(n)


@pytest.mark.parametrize("scale", [1e-3, 1.0, 10.0, 100.0])
def test_orthogonal_in_float32_over_the_documented_range(scale):
    raw = scale * torch.randn(16, 16, 16, generator=torch.Generator().manual_seed(0))
    assert Q.contains(Q.apply(raw)).all()


def test_both_determinants_are_reached_and_inverted():
    gen = torch.Generator().manual_seed(1)
    raw = torch.randn(200, 5, 5, generator=gen, dtype=torch.float64)
    det = torch.linalg.det(Q.apply(raw))
    torch.testing.assert_close(det.abs(), torch.ones(200, dtype=torch.float64))
    assert (det < 0).any()
    assert (det > 0).any()
    torch.testing.assert_close(torch.sign(det), torch.where(raw[:, 0, 0] < 0, -1.0, 1.0).double())
    members = Q.apply(raw)
    torch.testing.assert_close(Q.apply(Q.inverse(members)), members)


def test_haar_init_trace_statistics():
    """For Haar Q on O(n), E[tr Q] = 0 and E[tr(Q)²] = 1 (n >= 2); a biased init breaks these."""
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
    """Documented: the Cayley map misses rotations with eigenvalue -1, such as -I."""
    assert not torch.isfinite(Q.inverse(-torch.eye(4, dtype=torch.float64))).all()


def test_unknown_method():
    with pytest.raises(ValueError, match="Orthogonal: method must be one of 'cayley', got 'qr'"):
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
