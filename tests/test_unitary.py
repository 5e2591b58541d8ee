"""Unitary and SpecialUnitary: precision at every size, reach, Haar draws, torch parity."""

import math

import pytest
import torch
from torch.func import grad, vmap

import functional_struct as fs

COMPLEX = [
    pytest.param(torch.complex64, id="complex64"),
    pytest.param(torch.complex128, id="complex128"),
]
METHODS = ["cayley", "expm", "householder"]


def _gap(q):
    eye = torch.eye(q.shape[-1], dtype=q.dtype)
    return (q.mH @ q - eye).abs().amax().item()


@pytest.mark.parametrize("dtype", COMPLEX)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("n", [1, 2, 7, 16, 64])
def test_unitary_to_float_precision_at_every_size(method, n, dtype):
    gen = torch.Generator().manual_seed(n)
    s = fs.Unitary(method=method)
    eps = torch.finfo(dtype).eps
    for raw in (
        s.init((4, n, n), generator=gen, dtype=dtype),
        torch.randn(4, n, n, generator=gen, dtype=dtype) * (10 / max(n, 1)),
        torch.zeros(n, n, dtype=dtype),
    ):
        q = s.apply(raw)
        assert torch.isfinite(q).all()
        assert _gap(q) <= 50 * n * eps
        assert s.contains(q).all()


@pytest.mark.parametrize("method", ["cayley", "householder"])
def test_complex_stiefel_frames(method):
    s = fs.Unitary(method=method)
    q = s.apply(torch.randn(3, 9, 4, dtype=torch.complex128))
    assert q.shape == (3, 9, 4)
    assert _gap(q) < 1e-13
    assert torch.allclose(s.apply(s.inverse(q)), q, atol=1e-12)


def test_householder_reaches_every_unitary_cayley_not_minus_identity():
    minus = -torch.eye(4, dtype=torch.complex128)
    assert torch.isnan(fs.Unitary().inverse(minus)).all()
    for method in ("householder",):
        s = fs.Unitary(method=method)
        raw = s.inverse(minus)
        assert torch.isfinite(raw).all()
        assert torch.allclose(s.apply(raw), minus, atol=1e-12)


def test_expm_is_the_matrix_exponential_of_the_skew_hermitian_raw():
    raw = torch.randn(2, 5, 5, dtype=torch.complex128)
    lower = torch.tril(raw)
    skew = lower - lower.mH
    want = torch.linalg.matrix_exp(skew)
    assert torch.allclose(fs.Unitary(method="expm").apply(raw), want, atol=1e-12)


@pytest.mark.parametrize("structure", [fs.Unitary(), fs.SpecialUnitary()], ids=repr)
def test_init_is_haar(structure):
    """Haar on U(n) and SU(n) (n >= 2): E[tr U] = 0 and E|tr U|² = 1."""
    u = structure.apply(
        structure.init(
            (4000, 4, 4), generator=torch.Generator().manual_seed(0), dtype=torch.complex128
        )
    )
    trace = u.diagonal(dim1=-2, dim2=-1).sum(-1)
    se = 1 / math.sqrt(4000)
    assert trace.mean().abs() < 5 * se
    assert abs(trace.abs().square().mean().item() - 1) < 5 * 1.5 * se


@pytest.mark.parametrize("dtype", COMPLEX)
def test_special_unitary_has_determinant_one(dtype):
    s = fs.SpecialUnitary()
    q = s.apply(torch.randn(8, 6, 6, dtype=dtype) * 3)
    det = torch.linalg.det(q.to(torch.complex128))
    assert (det - 1).abs().max() < 50 * torch.finfo(dtype).eps * 6
    assert s.contains(q).all()
    assert not s.contains(fs.Unitary().apply(torch.randn(6, 6, dtype=dtype) * 3)).any()


def test_special_unitary_projection_is_nearest_for_unitary_input():
    """For a unitary input, no turn of it by other phases (det kept at 1) comes closer."""
    u = fs.Unitary().apply(torch.randn(5, 5, dtype=torch.complex128))
    p = fs.SpecialUnitary().project(u)
    best = (p - u).norm()
    values, vectors = torch.linalg.eig(u.mH @ p)
    gen = torch.Generator().manual_seed(0)
    for _ in range(200):
        jitter = 0.05 * torch.randn(5, generator=gen, dtype=torch.float64)
        jitter = jitter - jitter.mean()
        turned = (
            p
            @ vectors
            @ torch.diag(torch.polar(torch.ones(5, dtype=torch.float64), jitter))
            @ torch.linalg.inv(vectors)
        )
        assert (turned - u).norm() >= best - 1e-12


def test_gradients_train_under_vmap_with_complex_raw():
    """torch.func.grad takes complex raw (torch's convention: dL/dRe + i dL/dIm)."""
    s = fs.Unitary()
    gen = torch.Generator().manual_seed(0)
    target = fs.Unitary().apply(torch.randn(5, 5, generator=gen, dtype=torch.complex128))
    raw = s.init((8, 5, 5), generator=gen, dtype=torch.complex128)

    def loss(r):
        return (s.apply(r) - target).abs().square().sum()

    start = vmap(loss)(raw)
    for _ in range(200):
        raw = raw - 0.02 * vmap(grad(loss))(raw)
    assert (vmap(loss)(raw) < 0.5 * start).all()
    assert s.contains(s.apply(raw)).all()


def test_riemannian_adam_on_unitary_points():
    s = fs.Unitary()
    gen = torch.Generator().manual_seed(1)
    target = fs.Unitary().apply(torch.randn(4, 4, generator=gen, dtype=torch.complex128))
    point = s.apply(s.init((4, 4), generator=gen, dtype=torch.complex128))
    opt = fs.optim.riemannian_adam(s, lr=0.05)
    state = opt.init(point)
    for _ in range(300):
        g = grad(lambda x: (x - target).abs().square().sum())(point)
        point, state = opt.update(point, g, state)
    assert s.contains(point)
    assert (point - target).abs().max() < 1e-2


def test_torch_parametrization_agrees_on_the_set():
    """torch's orthogonal parametrization of a complex weight and fs.Unitary: both unitary."""
    layer = torch.nn.Linear(4, 4, bias=False, dtype=torch.complex64)
    torch.nn.utils.parametrizations.orthogonal(layer)
    assert fs.Unitary().contains(layer.weight.detach())


@pytest.mark.parametrize("dtype", COMPLEX)
def test_special_unitary_inverse_of_members_with_repeated_eigenvalues(dtype):
    """eig's vectors within a repeated eigenvalue need not be orthogonal: the logarithm is
    built on an orthonormalized basis (a hostile sweep found errors up to 1.6 before)."""
    su = fs.SpecialUnitary()
    h = torch.tensor([[1, 1], [1, -1]], dtype=torch.complex128) / 2**0.5
    gen = torch.Generator().manual_seed(0)
    members = [torch.kron(h, h)]
    for phases in ([-1, -1, 1, 1], [-1, -1, 1j, -1j], [1j, 1j, -1j, -1j]):
        u = torch.linalg.qr(torch.randn(4, 4, generator=gen, dtype=torch.complex128)).Q
        members.append(u @ torch.diag(torch.tensor(phases, dtype=torch.complex128)) @ u.mH)
    q = torch.stack(members).to(dtype)
    assert su.contains(q).all()
    back = su.apply(su.inverse(q))
    assert (back - q).abs().max() < 100 * torch.finfo(dtype).eps
