"""Charts: pure pairs of functions ``forward`` (raw to member) and ``inverse`` (member to raw).

Structures select their chart by name from the registries here (``Orthogonal(method=...)``
from :data:`ORTHOGONAL_CHARTS`, ``PositiveDefinite(method=...)`` from
:data:`POSITIVE_DEFINITE_CHARTS`), and structures built from others' pieces (``FixedRank``,
``Invertible``, ``SpecialLinear``) call the same charts instead of another class's hooks.

- :data:`ROTATION_CHARTS`: raw to orthonormal columns; square images are rotations.
- :data:`ORTHOGONAL_CHARTS`: the same with the sign of ``raw[0, 0]`` choosing the determinant
  of square images (both components of the orthogonal group).
- :data:`POSITIVE_DEFINITE_CHARTS`: raw to ``base + t I`` with ``t`` the floor; ``forward`` and
  ``inverse`` take ``(x, floor, relative_floor)``.
- :data:`UNIT_DETERMINANT_STRETCH_CHARTS`: raw to ``exp(S)``, ``S`` traceless symmetric.

Every function is free of host syncs and data-dependent Python branching (shapes only), and
gives NaN, never an exception, where no answer exists.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from . import _guards
from ._expm import matrix_exp
from ._kernels import (
    INIT_ROUNDS,
    abs_squared,
    add_to_diagonal,
    boundary_cholesky,
    eigen_reconstruct,
    eye_like,
    flip_first_column,
    floor_from_mean,
    floor_margin,
    inverse_softplus,
    log_softplus,
    lower_from_skew,
    polar_factor,
    rounding_level,
    skew_from_lower,
    symmetric_from_lower,
    tril_with_diagonal,
)
from ._structure import default_tolerances

__all__ = [
    "ORTHOGONAL_CHARTS",
    "POSITIVE_DEFINITE_CHARTS",
    "ROTATION_CHARTS",
    "UNITARY_CHARTS",
    "UNIT_DETERMINANT_STRETCH_CHARTS",
    "Chart",
]


@dataclasses.dataclass(frozen=True)
class Chart:
    """A named chart: ``forward`` maps a raw to a member, ``inverse`` a member to its raw.

    ``forward(raw, *params)`` and ``inverse(value, *params)`` take the same hyperparameters
    (none for the orthogonal charts; ``floor, relative_floor`` for the positive-definite ones).
    ``inverse(forward(raw))`` recovers ``raw`` on the raw entries ``forward`` reads.

    Attributes:
      name: the registry key, as a structure's ``method`` names it.
      forward: raw to member.
      inverse: member to raw; NaN where the member is out of the chart's reach.
      precise_range: the raw entries for which ``forward`` is accurate to rounding.
      init_rounds: Haar candidates ``init`` needs per matrix (1 where ``inverse`` never leaves
        the precise range).
      forward_and_log_det: ``forward`` and ``log|det J|`` from the raw's lower triangle to
        the member's (None where the chart has no log-det form).

    Example:
      >>> chart = ORTHOGONAL_CHARTS["cayley"]
      >>> raw = torch.tensor([[-1.0, 0.0], [0.5, 0.0]])  # raw[0, 0] < 0: determinant -1
      >>> torch.allclose(chart.inverse(chart.forward(raw)), raw)
      True
    """

    name: str
    forward: Callable[..., Tensor]
    inverse: Callable[..., Tensor]
    precise_range: str = ""
    init_rounds: int = INIT_ROUNDS
    forward_and_log_det: Callable[..., tuple[Tensor, Tensor]] | None = None


# --------------------------------------------------------------------------- orthogonal: Cayley
def _inv_or_nan(a: Tensor) -> Tensor:
    """``a⁻¹``, NaN for each matrix whose LU factorization hits an exact zero pivot.

    ``I - A`` with ``A`` skew is invertible in exact arithmetic, but in floating point the unit
    diagonal is lost next to raw entries of ``1 / eps`` (1e8 in float32, 1e16 in float64) and
    the LU can break down; ``inv_ex`` reports it without raising or syncing, and is correct
    under ``jacfwd``, ``vmap(jacfwd)`` and ``torch.compile`` (checked by the contract tests).
    """
    inverse, info = torch.linalg.inv_ex(a)
    return torch.where((info == 0)[..., None, None], inverse, torch.nan)


def cayley(raw: Tensor) -> Tensor:
    """The first columns of ``(I + A)(I - A)⁻¹ = 2 (I - A)⁻¹ - I``, ``A`` skew from the raw.

    ``A`` is :func:`~._kernels.skew_from_lower` of the n x k raw zero-padded to n x n: skew
    from the strict lower triangle, or for complex raw skew-Hermitian with the imaginary parts
    of the diagonal too (then ``Q`` is unitary).
    Written with ``inv_ex``, not ``solve``: ``vmap(jacfwd(torch.linalg.solve))`` is silently
    wrong (checked by the contract tests).

    Example:
      >>> cayley(torch.zeros(3, 2))
      tensor([[1., 0.],
              [0., 1.],
              [0., 0.]])
    """
    n, k = raw.shape[-2:]
    if k < n:  # tall: zero-pad to n x n (a pad of width 0 would still copy, so square skips it)
        raw = F.pad(raw, (0, n - k))
    skew = skew_from_lower(raw)
    eye = eye_like(skew)
    q = 2 * _inv_or_nan(eye - skew) - eye
    return q if n == k else q[..., :k]


def inverse_cayley(q: Tensor) -> Tensor:
    """The raw whose Cayley image is ``q`` (n x k, orthonormal columns); NaN where none is.

    With ``q = [Q₁; Q₂]`` (``Q₁`` the top k x k block) and ``K = (Q₁ + I)⁻¹``, the skew
    ``A = [[B, -Cᴴ], [C, 0]]`` has ``C = Q₂ K`` and ``B = I - 2K + CᴴC``; for square ``q``
    this is ``(Q - I)(Q + I)⁻¹``. Not differentiated, so ``inv_ex`` is safe here.

    Example:
      >>> inverse_cayley(-torch.eye(2)).isnan().all().item()  # eigenvalue -1: out of reach
      True
    """
    k = q.shape[-1]
    top, bottom = q[..., :k, :], q[..., k:, :]
    eye = eye_like(top)
    inverse, info = torch.linalg.inv_ex(top + eye)
    c = bottom @ inverse
    b = eye - 2 * inverse + c.mH @ c
    lower = torch.cat([lower_from_skew((b - b.mH) / 2), c], dim=-2)
    return torch.where((info == 0)[..., None, None], lower, torch.nan)


# ----------------------------------------------------------------------------- orthogonal: expm
def exp_skew(raw: Tensor) -> Tensor:
    """``exp(A)``, ``A`` :func:`~._kernels.skew_from_lower` of the raw (skew-Hermitian if complex).

    Far beyond :func:`~._expm.valid_norm` the squarings overflow: NaN there, not a wrong
    infinite entry.

    Example:
      >>> q = exp_skew(torch.tensor([[0.0, 0.0], [math.pi / 2, 0.0]]))
      >>> torch.allclose(q, torch.tensor([[0.0, -1.0], [1.0, 0.0]]), atol=1e-6)
      True
    """
    q = matrix_exp(skew_from_lower(raw))
    return torch.where(torch.isinf(q), torch.nan, q)


def log_rotation(q: Tensor, roots: int = 4, terms: int = 10) -> Tensor:
    """The raw of the principal logarithm of rotations (or unitaries) ``q``, in float64.

    Take ``roots`` principal square roots (the polar factor of ``I + X`` is ``X^(1/2)``), so
    every rotation angle is below pi / 16; then ``log X = 2 atanh(A)`` with the inverse Cayley
    transform ``A = (X - I)(X + I)⁻¹`` (norm below tan(pi / 32)), summed as a series. NaN for
    rotations with an eigenvalue -1 (no principal logarithm; the first square root fails).
    The raw is :func:`~._kernels.lower_from_skew` of the logarithm.

    Example:
      >>> log_rotation(torch.tensor([[0.0, -1.0], [1.0, 0.0]]))
      tensor([[0.0000, 0.0000],
              [1.5708, 0.0000]])
    """
    x = polar_factor(q.to(torch.complex128 if q.is_complex() else torch.float64))
    eye = eye_like(x)
    target = x
    for i in range(roots):
        x = polar_factor(eye + x)
        if i == 0:  # where I + Q is singular the polar factor is not a square root
            ok = ((x @ x - target).abs().amax((-2, -1)) < 1e-6)[..., None, None]
    a = torch.linalg.solve_ex(x + eye, x - eye, left=False)[0]
    a2 = a @ a
    term, total = a, a
    for j in range(1, terms):
        term = term @ a2
        total = total + term / (2 * j + 1)
    log = 2 ** (roots + 1) * total
    lower = lower_from_skew((log - log.mH) / 2)
    return torch.where(ok, lower, torch.nan).to(q.dtype)


# ----------------------------------------------------------------------- orthogonal: Householder
def householder(raw: Tensor) -> Tensor:
    """``-H₁ ⋯ H_k`` applied to the first k columns of I, reflectors from the raw columns.

    Example:
      >>> torch.equal(householder(torch.zeros(3, 2)), torch.eye(3, 2))
      True
    """
    n, k = raw.shape[-2:]
    vectors = torch.tril(raw, -1) + torch.eye(n, k, dtype=raw.dtype, device=raw.device)
    tau = 2 / vectors.square().sum(-2)
    return -torch.linalg.householder_product(vectors, tau)


def inverse_householder(q: Tensor) -> Tensor:
    """The raw whose Householder image is ``q``: one reflector per column, left to right.

    ``q = -H₁ ⋯ H_k E`` gives ``q e₁ = -H₁ e₁``, so ``v₁ = (e₁ + q₁) / (1 + q₁₁)``; then
    ``H₁ q = -H₂ ⋯ H_k E`` and so on. NaN where a column is ``-e_j`` (out of reach).

    Example:
      >>> inverse_householder(torch.eye(3, 2))
      tensor([[0., 0.],
              [0., 0.],
              [0., 0.]])
    """
    n, k = q.shape[-2:]
    rows = torch.arange(n, device=q.device)
    columns = []
    m = q
    for j in range(k):
        x = torch.where(rows >= j, m[..., :, j], 0.0)
        v = (x + (rows == j).to(q.dtype)) / (1 + x[..., j : j + 1])
        tau = 2 / v.square().sum(-1)
        m = m - (tau[..., None] * v)[..., :, None] * (v[..., None, :] @ m)
        columns.append(torch.where(rows > j, v, 0.0))
    return torch.stack(columns, dim=-1)


# ------------------------------------------------------------------ orthogonal: both components
def _with_reflections(chart: Chart) -> Chart:
    """``chart`` extended to square matrices of determinant -1 by the sign of ``raw[0, 0]``.

    For square raw, a negative ``raw[0, 0]`` (a diagonal entry the rotation charts leave
    unused) negates the first column of the image; ``inverse`` reads the determinant's sign
    and writes it there as ``±1``. Tall raw passes through: the Stiefel manifold is connected.
    """
    rotation_forward, rotation_inverse = chart.forward, chart.inverse

    def forward(raw: Tensor) -> Tensor:
        q = rotation_forward(raw)
        if raw.shape[-1] != raw.shape[-2]:
            return q
        return flip_first_column(q, raw[..., :1, :1] < 0)

    def inverse(value: Tensor) -> Tensor:
        n, k = value.shape[-2:]
        if n != k:
            return rotation_inverse(value)
        flip = (torch.linalg.det(value) < 0)[..., None, None]
        lower = rotation_inverse(flip_first_column(value, flip))
        sign = torch.where(flip, -1.0, 1.0).to(value.dtype)
        return lower + F.pad(sign, (0, n - 1, 0, n - 1))

    return dataclasses.replace(chart, forward=forward, inverse=inverse)


ROTATION_CHARTS: dict[str, Chart] = {
    "cayley": Chart(
        "cayley",
        cayley,
        inverse_cayley,
        "raw entries up to about 100 (orthogonality degrades as eps * |raw|)",
    ),
    "expm": Chart(
        "expm",
        exp_skew,
        log_rotation,
        "raw entries up to about 500 / n in float32 (1-norm below valid_norm)",
        # The principal logarithm has spectral norm at most pi, so its entries are always in
        # range: one candidate suffices (the fallback only catches the measure-zero NaN).
        init_rounds=1,
    ),
    "householder": Chart("householder", householder, inverse_householder, "any finite raw"),
}
"""Raw (n x k, n >= k) to orthonormal columns; the raw diagonal is unused."""

ORTHOGONAL_CHARTS: dict[str, Chart] = {
    name: _with_reflections(chart) for name, chart in ROTATION_CHARTS.items()
}
"""The rotation charts with ``raw[0, 0] < 0`` reaching determinant -1 for square raw."""


# ---------------------------------------------------------------------------------- unitary
def unitary_householder(raw: Tensor) -> Tensor:
    """``-H₁ ⋯ H_k Φ`` on the first k columns of I: reflections, then a phase per column.

    ``H_j`` reflects along the raw column ``j`` below the diagonal with a unit in the
    diagonal slot, and ``Φ = diag(exp(i Im raw_jj))``: every unitary (every point of the
    complex Stiefel manifold) is reached, with ``n² `` (``2nk - k²``) real parameters.

    Example:
      >>> torch.equal(unitary_householder(torch.zeros(3, 2, dtype=torch.complex64)),
      ...             torch.eye(3, 2, dtype=torch.complex64))
      True
    """
    n, k = raw.shape[-2:]
    vectors = torch.tril(raw, -1) + torch.eye(n, k, dtype=raw.dtype, device=raw.device)
    tau = 2 / torch.view_as_real(vectors).square().sum((-3, -1))
    q = -torch.linalg.householder_product(vectors, tau.to(raw.dtype))
    angles = raw.imag.diagonal(dim1=-2, dim2=-1)
    return q * torch.polar(torch.ones_like(angles), angles).unsqueeze(-2)


def inverse_unitary_householder(q: Tensor) -> Tensor:
    """The raw whose :func:`unitary_householder` image is ``q``: column by column.

    For column ``j`` (after the reflections of the columns before it), ``x`` turned by the
    phase of its entry ``x_j`` has a real ``x_j = |x_j| >= 0``; its reflection is along
    ``(x + e_j) / (1 + x_j)`` and the phase goes to ``Im raw_jj``. ``1 + x_j >= 1``, so no
    unitary is out of reach.

    Example:
      >>> q = unitary_householder(torch.randn(4, 3, dtype=torch.complex128))
      >>> torch.allclose(unitary_householder(inverse_unitary_householder(q)), q)
      True
    """
    n, k = q.shape[-2:]
    rows = torch.arange(n, device=q.device)
    columns, angles = [], []
    m = q
    for j in range(k):
        x = torch.where(rows >= j, m[..., :, j], 0.0)
        pivot = x[..., j : j + 1]
        size = pivot.abs()
        phase = torch.where(size > 0, pivot / torch.where(size > 0, size, 1.0), 1.0)
        x = x / phase
        v = (x + (rows == j).to(q.dtype)) / (1 + size)
        tau = 2 / torch.view_as_real(v).square().sum((-2, -1))
        m = m - (tau[..., None] * v)[..., :, None] * (v.conj()[..., None, :] @ m)
        columns.append(torch.where(rows > j, v, 0.0))
        angles.append(torch.angle(phase[..., 0]))
    lower = torch.stack(columns, dim=-1)
    return lower + 1j * F.pad(torch.diag_embed(torch.stack(angles, -1)), (0, 0, 0, n - k))


UNITARY_CHARTS: dict[str, Chart] = {
    "cayley": ROTATION_CHARTS["cayley"],
    "expm": ROTATION_CHARTS["expm"],
    "householder": Chart(
        "householder", unitary_householder, inverse_unitary_householder, "any finite raw"
    ),
}
"""Complex raw (n x k, n >= k) to unitary columns; the real parts of the diagonal are unused.

Cayley and the exponential read the lower triangle with the imaginary diagonal
(:func:`~._kernels.skew_from_lower`); Householder adds a phase per column.
"""


def special_unitary(raw: Tensor) -> Tensor:
    """``exp(A - tr(A)/n I)``, ``A`` skew-Hermitian from the raw (:func:`exp_skew`): det 1.

    The exponential of a traceless skew-Hermitian matrix has determinant ``e^0 = 1`` exactly,
    and every special unitary is one. No determinant is computed: in torch 2.13 the forward
    derivative of ``torch.linalg.det`` does not run under ``vmap`` for complex input, that of
    ``slogdet`` is silently wrong there, and inductor fails on ``lu_factor_ex``'s backward.

    Example:
      >>> q = special_unitary(torch.randn(3, 3, dtype=torch.complex128))
      >>> torch.allclose(torch.linalg.det(q), torch.tensor(1.0, dtype=torch.complex128))
      True
    """
    skew = skew_from_lower(raw)
    n = skew.shape[-1]
    mean = skew.diagonal(dim1=-2, dim2=-1).sum(-1) / n
    q = matrix_exp(skew - mean[..., None, None] * eye_like(skew))
    return torch.where(torch.isinf(q), torch.nan, q)


def log_special_unitary(q: Tensor) -> Tensor:
    """A raw of :func:`special_unitary` for ``q``: a traceless logarithm, by eigenvalues.

    The eigenvalues ``e^(iθ)`` (principal ``θ``) of a special unitary sum to ``2πk``; ``k`` of
    the largest ``θ`` are lowered by ``2π`` (or the smallest raised) so that the logarithm
    ``Q diag(iθ) Qᴴ`` is traceless. ``Q`` orthonormalizes ``eig``'s vectors (QR): within a
    repeated eigenvalue they need not be orthogonal, and a shift by ``2π`` inside one
    eigenspace (or ``±π`` at -1) needs an orthonormal basis to stay a logarithm. Computed in
    complex128; not differentiated.

    Example:
      >>> q = special_unitary(torch.randn(4, 4, dtype=torch.complex128) * 3)
      >>> torch.allclose(special_unitary(log_special_unitary(q)), q)
      True
    """
    wide = q.to(torch.complex128)
    values, vectors = torch.linalg.eig(wide)
    theta = torch.angle(values)
    n = q.shape[-1]
    k = torch.round(theta.sum(-1, keepdim=True) / (2 * math.pi))
    rank = theta.argsort(-1).argsort(-1)
    theta = theta - 2 * math.pi * ((k > 0) & (rank >= n - k)).to(theta.dtype)
    theta = theta + 2 * math.pi * ((k < 0) & (rank < -k)).to(theta.dtype)
    basis = torch.linalg.qr(vectors).Q
    log = (basis * (1j * theta).unsqueeze(-2)) @ basis.mH
    return lower_from_skew((log - log.mH) / 2).to(q.dtype)


# ------------------------------------------------------------------------- positive-definite
def _cholesky_forward(raw: Tensor, floor: float, relative_floor: float) -> Tensor:
    """``L Lᵀ + t I``, ``L`` the lower raw triangle with softplus diagonal, ``t`` from ``‖L‖²``.

    The shift is kept (..., 1, 1)-shaped and added as ``shift * I``: a batch-shaped reduction
    times a Python float, broadcast into a later matmul (Invertible's ``Q @ P``), breaks the
    compiled ``jacfwd`` (a float64 fake tangent).
    """
    factor = tril_with_diagonal(raw, F.softplus(raw.real.diagonal(dim1=-2, dim2=-1)))
    size = abs_squared(factor).sum((-2, -1), keepdim=True)
    shift = size * (relative_floor / factor.shape[-1]) + floor
    return factor @ factor.mH + shift * eye_like(factor)


def _expm_forward(raw: Tensor, floor: float, relative_floor: float) -> Tensor:
    """``exp(S) + t I``, ``S`` symmetric from the lower raw triangle, ``t`` from ``tr exp(S)``.

    ``exp(S)`` is formed as the Gram matrix of ``exp(S / 2)``: positive semidefinite up to the
    rounding of one product, whatever the error of the Padé exponential, which alone can leave
    float32 members below the floor's margin.
    """
    half = matrix_exp(symmetric_from_lower(raw / 2, raw.diagonal(dim1=-2, dim2=-1) / 2))
    base = half @ half.mT
    mean = base.diagonal(dim1=-2, dim2=-1).mean(-1, keepdim=True).unsqueeze(-1)
    return base + (mean * relative_floor + floor) * eye_like(base)


def _base_of(value: Tensor, floor: float, relative_floor: float) -> tuple[Tensor, Tensor]:
    """``value - t I`` and how far below zero its spectrum may sit (``contains``' margin)."""
    diagonal = value.real.diagonal(dim1=-2, dim2=-1)
    shift = floor_from_mean(diagonal.mean(-1), floor, relative_floor)
    margin = floor_margin(shift, diagonal.abs().amax(-1), *default_tolerances(value.dtype))
    return add_to_diagonal(value, -shift), margin


def _cholesky_inverse(value: Tensor, floor: float, relative_floor: float) -> Tensor:
    """The raw of ``value``: a boundary Cholesky factorization of ``value - t I``."""
    gram, margin = _base_of(value, floor, relative_floor)
    factor = boundary_cholesky(gram, value, margin)
    return tril_with_diagonal(factor, inverse_softplus(factor.real.diagonal(dim1=-2, dim2=-1)))


def _expm_inverse(value: Tensor, floor: float, relative_floor: float) -> Tensor:
    """The raw of ``value``: the lower triangle of the symmetric logarithm of ``value - t I``.

    Eigenvalues of the base below the rounding level of ``value`` (``exp(S)`` of a wide
    spectrum puts them there), or up to the margin below zero (as far as ``contains``
    accepts), are raised to that level, as :func:`~._kernels.boundary_cholesky` does; clearly
    negative ones (non-members) give NaN.
    """
    gram, margin = _base_of(value, floor, relative_floor)
    eigenvalues, vectors = _guards.eigh(gram)
    scale = value.diagonal(dim1=-2, dim2=-1).abs().amax(-1)
    level = rounding_level(scale, value.shape[-1])
    level = level.unsqueeze(-1).clamp_min(torch.finfo(value.dtype).tiny)
    lowest = -8 * level - margin.unsqueeze(-1)
    logs = torch.where(eigenvalues >= lowest, eigenvalues.clamp_min(level).log(), math.nan)
    return torch.tril(eigen_reconstruct(vectors, logs))


def _cholesky_forward_and_log_det(
    raw: Tensor, floor: float, relative_floor: float
) -> tuple[Tensor, Tensor]:
    """The Cholesky chart and ``log|det J|`` from the raw lower triangle to the member's.

    Three factors, in O(n²): the softplus diagonal (``sigmoid(raw_ii)`` each); ``L -> L Lᵀ``,
    whose determinant is ``2ⁿ ∏ L_ii^(n - i)`` (``i`` from 0); and the shift
    ``t = floor + r ‖L‖² / n``, a rank-one update ``J_B + (2r/n) e ℓᵀ`` (``e`` the identity's
    coordinates, ``ℓ`` those of ``L``) whose determinant lemma factor
    ``1 + (2r/n) ℓᵀ J_B⁻¹ e`` is exactly ``1 + r``: ``J_B⁻¹ e`` is the lower ``dL`` with
    ``dL Lᵀ + L dLᵀ = I``, that is ``dL = L Φ(G⁻¹)`` with ``G = LᵀL`` and ``Φ`` the lower
    triangle with half the diagonal; as ``Φ(P) + Φ(P)ᵀ = P``,
    ``⟨L, dL⟩ = tr(G Φ(G⁻¹)) = tr(G G⁻¹) / 2 = n / 2``.
    """
    diagonal = raw.diagonal(dim1=-2, dim2=-1)
    n = raw.shape[-1]
    powers = torch.arange(n, 0, -1, dtype=raw.dtype, device=raw.device)
    log_det = (F.logsigmoid(diagonal) + powers * log_softplus(diagonal)).sum(-1)
    constant = n * math.log(2) + math.log1p(relative_floor)
    return _cholesky_forward(raw, floor, relative_floor), log_det + constant


def _log_sinhc(d: Tensor) -> Tensor:
    """``log(sinh(d/2) / (d/2))``, even in ``d``; the series ``d²/24 - d⁴/2880`` near 0."""
    a = d.abs()
    small = a < 1e-2
    safe = torch.where(small, 1.0, a)
    exact = safe / 2 + torch.log(-torch.expm1(-safe) / safe)
    return torch.where(small, d.square() / 24 - d.square().square() / 2880, exact)


def _expm_forward_and_log_det(
    raw: Tensor, floor: float, relative_floor: float
) -> tuple[Tensor, Tensor]:
    """The exponential chart and ``log|det J|`` from the raw lower triangle to the member's.

    ``S -> exp(S)`` on symmetric matrices has the eigenvalues
    ``(e^λi - e^λj) / (λi - λj)`` (Daleckii-Krein; ``e^λi`` for ``i = j``) for ``i <= j``, so
    ``log|det| = (n + 1)/2 · Σ λ + Σ_{i<j} log(sinh(δ/2) / (δ/2))`` with ``δ = λi - λj``: one
    ``eigvalsh``. The shift ``t = floor + r tr(exp(S)) / n`` multiplies it by ``1 + r``.
    """
    n = raw.shape[-1]
    diagonal = raw.diagonal(dim1=-2, dim2=-1)
    eigenvalues = _guards.eigvalsh(symmetric_from_lower(raw, diagonal))
    pairs = _log_sinhc(eigenvalues.unsqueeze(-1) - eigenvalues.unsqueeze(-2)).sum((-2, -1)) / 2
    log_det = (n + 1) / 2 * diagonal.sum(-1) + pairs + math.log1p(relative_floor)
    return _expm_forward(raw, floor, relative_floor), log_det


POSITIVE_DEFINITE_CHARTS: dict[str, Chart] = {
    "cholesky": Chart(
        "cholesky",
        _cholesky_forward,
        _cholesky_inverse,
        "any finite raw up to n = 256",
        forward_and_log_det=_cholesky_forward_and_log_det,
    ),
    "expm": Chart(
        "expm",
        _expm_forward,
        _expm_inverse,
        "raw entries below about 80 / n (float32 overflows past an eigenvalue of 88)",
        forward_and_log_det=_expm_forward_and_log_det,
    ),
}
"""Raw (lower triangle) to ``base + t I``, ``t = floor + relative_floor * mean(eig(base))``."""


# ------------------------------------------------------------------------ unit-determinant stretch
def _traceless_exp(raw: Tensor) -> Tensor:
    """``exp(S)``, ``S`` symmetric from the lower raw triangle minus its mean diagonal."""
    diagonal = raw.diagonal(dim1=-2, dim2=-1)
    return matrix_exp(symmetric_from_lower(raw, diagonal - diagonal.mean(-1, keepdim=True)))


def _symmetric_log(p: Tensor) -> Tensor:
    """The lower triangle of the symmetric logarithm of ``p``; NaN where ``p`` is singular."""
    eigenvalues, vectors = _guards.eigh(p)
    return torch.tril(eigen_reconstruct(vectors, eigenvalues.log()))


UNIT_DETERMINANT_STRETCH_CHARTS: dict[str, Chart] = {
    "expm": Chart(
        "expm", _traceless_exp, _symmetric_log, "stretch raw entries up to about 0.3 in float32"
    ),
}
"""Raw (lower triangle) to ``exp(S)`` with ``tr S = 0``: symmetric positive-definite, det 1."""
