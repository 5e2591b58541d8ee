"""Shared linear-algebra kernels: each written once, used by every structure that needs it.

Pure functions of tensors and Python numbers, with no host syncs and no data-dependent Python
branching, so they work under ``vmap``, ``jacfwd`` and ``torch.compile(fullgraph=True)``. The
decompositions come from :mod:`._guards`, which never raise on non-finite or huge input.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from . import _guards

__all__ = [
    "INIT_RAW_BOUND",
    "INIT_ROUNDS",
    "add_to_diagonal",
    "boundary_cholesky",
    "draw_in_range",
    "eigen_reconstruct",
    "eye_like",
    "flip_first_column",
    "flip_smallest_where_reflection",
    "floor_from_mean",
    "floor_margin",
    "abs_squared",
    "column_phases",
    "haar_orthogonal",
    "lower_from_skew",
    "skew_from_lower",
    "haar_raw",
    "inverse_softplus",
    "largest_entry_signs",
    "lift_to_floor",
    "log_softplus",
    "lower_factor_raw",
    "polar",
    "polar_factor",
    "qr_frame",
    "simplex_projection",
    "simplex_thresholds",
    "sym",
    "project_spectrum_to_floor",
    "rounding_level",
    "svd_reconstruct",
    "symmetric_from_lower",
    "tril_with_diagonal",
    "truncated_svd",
]

INIT_RAW_BOUND = 100.0
"""``init`` keeps raw entries up to this size: the range where the orthogonal charts are precise."""

INIT_ROUNDS = 8
"""Candidates ``init`` draws per matrix; the first in range is kept (:func:`draw_in_range`)."""


# ---------------------------------------------------------------------------------- assembly
def eye_like(x: Tensor) -> Tensor:
    """The identity matching the last dim, dtype and device of ``x``.

    Example:
      >>> eye_like(torch.zeros(2, 3, dtype=torch.float64))
      tensor([[1., 0., 0.],
              [0., 1., 0.],
              [0., 0., 1.]], dtype=torch.float64)
    """
    return torch.eye(x.shape[-1], dtype=x.dtype, device=x.device)


def add_to_diagonal(a: Tensor, shift: Tensor) -> Tensor:
    """``a + shift * I`` for a batch of square matrices and a batch of scalars ``shift``.

    Example:
      >>> add_to_diagonal(torch.zeros(2, 2), torch.tensor(3.0))
      tensor([[3., 0.],
              [0., 3.]])
    """
    n = a.shape[-1]
    return a + torch.diag_embed(shift.unsqueeze(-1).expand(*shift.shape, n))


def tril_with_diagonal(x: Tensor, diagonal: Tensor) -> Tensor:
    """The strict lower triangle of ``x`` with ``diagonal`` (shape ``(..., n)``) on its diagonal.

    Example:
      >>> tril_with_diagonal(torch.ones(2, 2), torch.tensor([5.0, 6.0]))
      tensor([[5., 0.],
              [1., 6.]])
    """
    return torch.tril(x, -1) + torch.diag_embed(diagonal)


def symmetric_from_lower(x: Tensor, diagonal: Tensor) -> Tensor:
    """The symmetric matrix of the strict lower triangle of ``x``, with ``diagonal``.

    Example:
      >>> symmetric_from_lower(torch.tensor([[9.0, 9.0], [2.0, 9.0]]), torch.tensor([1.0, 3.0]))
      tensor([[1., 2.],
              [2., 3.]])
    """
    lower = torch.tril(x, -1)
    return lower + lower.mT + torch.diag_embed(diagonal)


def flip_first_column(q: Tensor, flip: Tensor) -> Tensor:
    """Negate the first column of each matrix where ``flip`` (bool, shape ``(..., 1, 1)``).

    A product with a ``(..., 1, n)`` sign row rather than ``torch.where(flip, -q, q)``: under
    ``vmap(grad)`` the product's backward is one multiply, the ``where``'s two masked copies.
    """
    first = torch.arange(q.shape[-1], device=q.device) == 0
    return q * torch.where(first & flip, -1.0, 1.0).to(q.dtype)


def largest_entry_signs(vectors: Tensor) -> Tensor:
    """The (..., 1, k) signs that make each column's largest entry positive.

    For complex vectors, the unit phases that make it real and positive.

    Eigen- and singular vectors are unique only up to sign, and LAPACK's signs differ between
    batched and single calls: multiplying by these gives one answer for every batch layout.

    Example:
      >>> largest_entry_signs(torch.tensor([[0.6, 0.1], [-0.8, 0.2]]))
      tensor([[-1.,  1.]])
    """
    top = vectors.gather(-2, vectors.abs().argmax(-2, keepdim=True))
    if top.is_complex():
        size = top.abs()
        return torch.where(size > 0, top.conj() / torch.where(size > 0, size, 1.0), 1.0)
    return torch.where(top < 0, -1.0, 1.0).to(vectors.dtype)


# ------------------------------------------------------------------------- scalar functions
def inverse_softplus(y: Tensor) -> Tensor:
    """The stable inverse of ``softplus``: ``y + log(-expm1(-y))`` (``-inf`` at 0).

    Example:
      >>> inverse_softplus(torch.nn.functional.softplus(torch.tensor([-3.0, 0.5, 30.0])))
      tensor([-3.0000,  0.5000, 30.0000])
    """
    return y + torch.log(-torch.expm1(-y))


def log_softplus(x: Tensor) -> Tensor:
    """``log(softplus(x))``, also where ``softplus`` underflows (``x - exp(x) / 2`` below -15).

    Example:
      >>> log_softplus(torch.tensor([-50.0, 0.0]))
      tensor([-50.0000,  -0.3665])
    """
    small = x < -15
    tail = x - torch.exp(torch.where(small, x, 0.0)) / 2
    return torch.where(small, tail, F.softplus(torch.where(small, 0.0, x)).log())


def rounding_level(scale: Tensor, n: int, dtype: torch.dtype | None = None) -> Tensor:
    """``eps * n * scale``: the rounding of an n x n matrix computation at magnitude ``scale``.

    ``eps`` is that of ``dtype`` (default: ``scale``'s), for a value computed in ``dtype`` and
    examined in a wider one. Callers take a small multiple of it as the distance below a
    boundary that still counts as on it.

    Example:
      >>> float(rounding_level(torch.tensor(2.0, dtype=torch.float64), 4, torch.float32))
      9.5367431640625e-07
    """
    eps = torch.finfo(scale.dtype if dtype is None else dtype).eps
    return eps * n * scale


def floor_from_mean(mean: Tensor, floor: float, relative_floor: float) -> Tensor:
    """The floor ``t`` of a spectrum whose mean is ``mean``, for ``t = floor + r * mean(base)``.

    A spectrum ``λ = base + t`` has ``mean(λ) = (1 + r) mean(base) + floor``; this solves for
    ``mean(base)`` and returns ``floor + r (mean(λ) - floor) / (1 + r)``.

    Example:
      >>> float(floor_from_mean(torch.tensor(2.0, dtype=torch.float64), 0.5, 1.0))
      1.25
    """
    return floor + relative_floor * (mean - floor) / (1 + relative_floor)


def floor_margin(shift: Tensor, scale: Tensor, atol: float, rtol: float) -> Tensor:
    """How far below a floor ``shift`` a member's smallest eigen- or singular value may sit.

    Rounding in ``apply`` can take it a little below the floor, never below half of it; and a
    ``contains`` that allowed more than the tolerance (``atol + rtol * scale``, ``scale`` the
    largest value) would accept matrices that ``project`` then moves. Both bounds hold.

    Example:
      >>> floor_margin(torch.tensor([1e-6, 1.0]), torch.tensor([1.0, 1.0]), 1e-4, 1e-4)
      tensor([5.0000e-07, 2.0000e-04])
    """
    return torch.minimum(0.5 * shift, atol + rtol * scale)


def lift_to_floor(values: Tensor, floor: float, relative_floor: float, steps: int = 3) -> Tensor:
    """Spectra ``values`` (..., k) raised to their floor :func:`floor_from_mean`.

    The floor depends on the mean of the raised spectrum; it moves by a factor
    ``relative_floor`` per step, so a few fixed steps settle it.

    Example:
      >>> lift_to_floor(torch.tensor([0.0, 4.0], dtype=torch.float64), 1.0, 0.0)
      tensor([1., 4.], dtype=torch.float64)
    """
    lifted = values
    for _ in range(steps):
        mean = lifted.mean(-1, keepdim=True)
        lifted = torch.maximum(values, floor_from_mean(mean, floor, relative_floor))
    return lifted


# --------------------------------------------------------------------- spectral reconstruction
def eigen_reconstruct(vectors: Tensor, values: Tensor) -> Tensor:
    """``V diag(values) Vᴴ`` as ``(V * values) @ Vᴴ``: a function of a symmetric (Hermitian) matrix.

    Example:
      >>> eigen_reconstruct(torch.eye(2), torch.tensor([2.0, 3.0]))
      tensor([[2., 0.],
              [0., 3.]])
    """
    return (vectors * values.unsqueeze(-2)) @ vectors.mH


def svd_reconstruct(u: Tensor, s: Tensor, vh: Tensor) -> Tensor:
    """``U diag(s) Vᴴ`` as ``(U * s) @ Vᴴ``.

    Example:
      >>> svd_reconstruct(torch.eye(2), torch.tensor([2.0, 3.0]), torch.eye(2))
      tensor([[2., 0.],
              [0., 3.]])
    """
    return (u * s.unsqueeze(-2)) @ vh


def truncated_svd(value: Tensor, rank: int) -> tuple[Tensor, Tensor, Tensor]:
    """``U``, ``σ`` and ``V`` of the ``rank`` largest singular values (never raises).

    Shapes ``(..., n, r)``, ``(..., r)`` and ``(..., m, r)``; NaN for non-finite matrices.

    Example:
      >>> u, s, v = truncated_svd(torch.diag(torch.tensor([1.0, 3.0, 2.0])), 2)
      >>> s
      tensor([3., 2.])
      >>> svd_reconstruct(u, s, v.mT)
      tensor([[0., 0., 0.],
              [0., 3., 0.],
              [0., 0., 2.]])
    """
    u, s, vh = _guards.svd(value)
    return u[..., :rank], s[..., :rank], vh[..., :rank, :].mT


def project_spectrum_to_floor(value: Tensor, floor: float, relative_floor: float) -> Tensor:
    """The nearest symmetric matrix whose eigenvalues are at least their floor.

    The symmetric part's eigenvalues are raised by :func:`lift_to_floor`; NaN for non-finite
    matrices.

    Example:
      >>> project_spectrum_to_floor(torch.diag(torch.tensor([-1.0, 2.0])), 0.5, 0.0)
      tensor([[0.5000, 0.0000],
              [0.0000, 2.0000]])
    """
    eigenvalues, vectors = _guards.eigh(value)
    return eigen_reconstruct(vectors, lift_to_floor(eigenvalues, floor, relative_floor))


def abs_squared(x: Tensor) -> Tensor:
    """``|x|²`` entrywise, real, and smooth for complex ``x`` too (no ``abs`` at 0).

    Example:
      >>> abs_squared(torch.tensor([3 + 4j]))
      tensor([25.])
    """
    return torch.view_as_real(x).square().sum(-1) if x.is_complex() else x.square()


def _thresholds_below_top(v: Tensor) -> tuple[Tensor, Tensor]:
    """``(tau - max(v), max(v))`` per row, the threshold computed on ``v - max(v)``."""
    top = v.amax(-1, keepdim=True)
    u = (v - top).sort(-1, descending=True).values
    excess = u.cumsum(-1) - 1
    k = torch.arange(1, v.shape[-1] + 1, dtype=v.dtype, device=v.device)
    count = (u - excess / k > 0).sum(-1, keepdim=True).clamp_min(1)
    return excess.gather(-1, count - 1) / count.to(v.dtype), top


def simplex_thresholds(v: Tensor) -> Tensor:
    """For each row of ``v``, the ``tau`` with ``sum(max(v - tau, 0)) = 1`` (sort and scan).

    Example:
      >>> simplex_thresholds(torch.tensor([[0.5, 2.0, -1.0]]))
      tensor([[1.]])
    """
    below, top = _thresholds_below_top(v)
    return below + top


def simplex_projection(v: Tensor) -> Tensor:
    """The Euclidean projection of each row of ``v`` onto the probability simplex.

    ``max(v - tau, 0)`` with :func:`simplex_thresholds`' ``tau``, formed as
    ``max((v - max v) - (tau - max v), 0)``: rows with entries far above 1 / eps keep the 1
    the sum needs.

    Example:
      >>> simplex_projection(torch.tensor([[0.5, 2.0, -1.0], [1e20, 3e20, -1.0]]))
      tensor([[0., 1., 0.],
              [0., 1., 0.]])
    """
    below, top = _thresholds_below_top(v)
    return ((v - top) - below).clamp_min(0)


def sym(a: Tensor) -> Tensor:
    """The symmetric part ``(A + Aᴴ) / 2`` (Hermitian, for complex ``A``)."""
    return (a + a.mH) / 2


def skew_from_lower(raw: Tensor) -> Tensor:
    """The skew-symmetric matrix of the raw's strict lower triangle, ``L - Lᵀ``.

    For complex raw, the skew-Hermitian ``T - Tᴴ`` of the lower triangle ``T`` with its
    diagonal: the diagonal is ``2i Im(raw_kk)`` (the real parts are unused).

    Example:
      >>> skew_from_lower(torch.tensor([[5.0, 0.0], [2.0, 5.0]]))
      tensor([[ 0., -2.],
              [ 2.,  0.]])
      >>> skew_from_lower(torch.tensor([[1 + 1j]])).imag
      tensor([[2.]])
    """
    if raw.is_complex():
        lower = torch.tril(raw)
        return lower - lower.mH
    lower = torch.tril(raw, -1)
    return lower - lower.mT


def lower_from_skew(a: Tensor) -> Tensor:
    """A raw whose :func:`skew_from_lower` is the skew-symmetric (or skew-Hermitian) ``a``.

    The strict lower triangle, plus half the (imaginary) diagonal for complex ``a``.

    Example:
      >>> lower_from_skew(torch.tensor([[2j, -1.0], [1.0, 0.0]]))
      tensor([[0.+1.j, 0.+0.j],
              [1.+0.j, 0.+0.j]])
    """
    lower = torch.tril(a, -1)
    if not a.is_complex():
        return lower
    return lower + torch.diag_embed(a.diagonal(dim1=-2, dim2=-1) / 2)


def column_phases(r: Tensor) -> Tensor:
    """``(..., 1, k)`` unit factors that make ``diag(R)`` of a QR factorization ``>= 0``.

    The signs of the diagonal for real ``R`` (1 where it is 0), its phases ``d / |d|`` for
    complex ``R``: ``(Q D)(D⁻¹ R)`` is the factorization with a non-negative diagonal.
    """
    d = r.diagonal(dim1=-2, dim2=-1)
    if d.is_complex():
        size = d.abs()
        return torch.where(size > 0, d / torch.where(size > 0, size, 1.0), 1.0).unsqueeze(-2)
    return torch.where(d < 0, -1.0, 1.0).to(d.dtype).unsqueeze(-2)


def qr_frame(value: Tensor) -> Tensor:
    """``Q`` of ``value = Q R`` with ``diag(R) >= 0``: orthonormal columns, smooth in ``value``.

    The QR retraction of the orthogonal group and the Stiefel manifold; unlike the polar
    factor (an SVD) it has a forward derivative at every full-rank matrix, orthogonal ones
    included (where the singular values coincide and the SVD's derivative divides by zero).

    Example:
      >>> qr_frame(torch.tensor([[-2.0, 0.0], [0.0, 3.0]]))
      tensor([[-1.,  0.],
              [ 0.,  1.]])
    """
    q, r = torch.linalg.qr(value)
    return q * column_phases(r)


def polar_factor(value: Tensor) -> Tensor:
    """``U Vᵀ`` of the thin SVD: the nearest matrix with orthonormal columns.

    Example:
      >>> polar_factor(torch.tensor([[2.0, 0.0], [0.0, -0.5]]))
      tensor([[ 1.,  0.],
              [ 0., -1.]])
    """
    u, _, vh = _guards.svd(value)
    return u @ vh


def polar(value: Tensor) -> tuple[Tensor, Tensor]:
    """``value = Q P``: ``Q = U Vᵀ`` orthogonal, ``P = V S Vᵀ`` symmetric positive semidefinite.

    Example:
      >>> q, p = polar(torch.tensor([[0.0, -2.0], [3.0, 0.0]]))
      >>> q @ p
      tensor([[ 0., -2.],
              [ 3.,  0.]])
    """
    u, s, vh = _guards.svd(value)
    return u @ vh, svd_reconstruct(vh.mT, s, vh)


def flip_smallest_where_reflection(u: Tensor, vh: Tensor) -> Tensor:
    """``u`` with its last column negated where ``U Vᵀ`` is a reflection.

    The last column belongs to the smallest singular value (they come in descending order), so
    ``U Vᵀ`` becomes the nearest rotation, and ``U S Vᵀ`` the nearest matrix of positive
    determinant.

    Example:
      >>> u = flip_smallest_where_reflection(torch.diag(torch.tensor([1.0, -1.0])), torch.eye(2))
      >>> torch.linalg.det(u)
      tensor(1.)
    """
    n = u.shape[-1]
    flip = (torch.linalg.det(u @ vh) < 0)[..., None]
    last = torch.arange(n, device=u.device) == n - 1
    return u * torch.where(flip & last, -1.0, 1.0).to(u.dtype).unsqueeze(-2)


# ---------------------------------------------------------------------- boundary factorization
def boundary_cholesky(gram: Tensor, value: Tensor, margin: Tensor | float = 0.0) -> Tensor:
    """Cholesky factor of the Gram part ``gram`` that an ``inverse`` recovers from ``value``.

    A member on the boundary of its set (a singular factor, so ``gram`` only semi-definite in
    floating point) is retried with a jitter of 8 rounding levels of ``value``'s largest
    diagonal entry. One whose smallest eigenvalue sits up to ``margin`` below zero (as far as
    ``contains`` accepts) is lifted by exactly that much plus the jitter. Anything else (a
    non-member) gets NaN, never a silent answer. ``cholesky_ex`` never raises, also under
    ``vmap``.

    Example:
      >>> gram = torch.tensor([[1.0, 1.0], [1.0, 1.0]])  # singular: plain Cholesky fails
      >>> factor = boundary_cholesky(gram, gram)
      >>> bool(torch.isfinite(factor).all()), torch.allclose(factor @ factor.mT, gram)
      (True, True)
      >>> bool(boundary_cholesky(-gram, gram).isnan().all())
      True
    """
    factor, info = torch.linalg.cholesky_ex(gram)
    scale = value.diagonal(dim1=-2, dim2=-1).abs().amax(-1)
    jitter = 8 * rounding_level(scale, value.shape[-1])
    jittered, info_jittered = torch.linalg.cholesky_ex(add_to_diagonal(gram, jitter))
    below = -_guards.eigvalsh(gram)[..., 0]
    lift = torch.where(below <= margin, below.clamp_min(0), math.nan)
    lifted, info_lifted = torch.linalg.cholesky_ex(add_to_diagonal(gram, lift + 2 * jitter))
    ok = (info == 0)[..., None, None]
    ok_jittered = (info_jittered == 0)[..., None, None]
    factor = torch.where(ok, factor, torch.where(ok_jittered, jittered, lifted))
    ok_lifted = (info_lifted == 0)[..., None, None] & torch.isfinite(lift)[..., None, None]
    return torch.where(ok | ok_jittered | ok_lifted, factor, math.nan)


# --------------------------------------------------------------------------------- draws
def lower_factor_raw(
    shape: torch.Size, generator: torch.Generator | None, dtype: torch.dtype, device: torch.device
) -> Tensor:
    """Raw for a well-conditioned lower factor: softplus diagonal 1, off-diagonal N(0, 1/n).

    Its Gram matrix has a condition number near 440 at n = 256, where raw N(0, 1) would be
    numerically singular.

    Example:
      >>> raw = lower_factor_raw(torch.Size((3, 3)), None, torch.float64, torch.device("cpu"))
      >>> torch.nn.functional.softplus(raw.diagonal())
      tensor([1., 1., 1.], dtype=torch.float64)
    """
    n = shape[-1]
    noise = torch.randn(shape, generator=generator, dtype=dtype, device=device) / math.sqrt(n)
    one = inverse_softplus(torch.ones((), dtype=dtype.to_real(), device=device))
    return tril_with_diagonal(noise, one.to(dtype).expand(shape[:-1]))


def haar_orthogonal(
    shape: torch.Size, generator: torch.Generator | None, dtype: torch.dtype, device: torch.device
) -> Tensor:
    """Haar-distributed orthogonal matrices: Q of a Gaussian's QR, columns signed by diag(R).

    Unitary ones for a complex ``dtype`` (complex Gaussian, columns turned by diag(R)'s phases).

    Example:
      >>> q = haar_orthogonal(torch.Size((5, 3)), None, torch.float64, torch.device("cpu"))
      >>> torch.allclose(q.mT @ q, torch.eye(3, dtype=torch.float64))
      True
    """
    q, r = torch.linalg.qr(torch.randn(shape, generator=generator, dtype=dtype, device=device))
    return q * column_phases(r)


def draw_in_range(
    draw: Callable[[tuple[int, ...]], Any],
    batch: tuple[int, ...],
    bound: float = INIT_RAW_BOUND,
    rounds: int = INIT_ROUNDS,
) -> Any:
    """For each batch element, the first of ``rounds`` draws whose raw entries are all in range.

    ``draw(shape)`` returns a tensor or a tuple of tensors with leading dims ``shape``;
    non-finite entries count as beyond ``bound``. All ``rounds`` candidates are drawn in one
    batched call and the first in range is picked with ``argmax`` and ``gather``: no host sync
    and no data-dependent loop, so this works on the meta device, and one generator state gives
    one answer.

    A chart of the orthogonal group has an edge (for the Cayley map, the matrices with an
    eigenvalue -1), and a Haar draw near it has a raw of any size: for Cayley, 1 in 60 draws
    at n = 5 and about 1 in 10 at n = 256 have an entry above 100, a few in 10⁴ above 10⁴. There
    ``apply`` loses precision as ``eps * |raw|`` and gradients vanish, so ``init`` keeps the
    first candidate in range: its members are Haar-distributed conditioned on the raw lying
    where the map is precise. Where all ``rounds`` candidates are out of range (probability
    below ``0.1 ** 8``) the first is clamped into ``[-bound, bound]`` (NaN entries set to 0):
    still a member, no longer exactly Haar.

    Example:
      >>> def draw(shape):  # candidate 0 out of range, candidate 1 in range
      ...     return torch.tensor([500.0, 1.0]).reshape(*shape, 1, 1)
      >>> draw_in_range(draw, (1,), rounds=2)
      tensor([[[1.]]])
    """
    raw = draw((rounds, *batch))
    parts = raw if isinstance(raw, tuple) else (raw,)
    keep = len(batch) + 1
    ok = torch.ones((rounds, *batch), dtype=torch.bool, device=parts[0].device)
    for part in parts:
        ok = ok & (part.abs() <= bound).flatten(keep).all(-1)
    # argmax returns the first maximal index: the first candidate in range, or 0 if none is.
    first = ok.to(torch.uint8).argmax(0, keepdim=True)
    found = ok.any(0)
    out = []
    for part in parts:
        core = part.shape[keep:]
        index = first.reshape(*first.shape, *(1,) * len(core)).expand(1, *batch, *core)
        picked = part.gather(0, index).squeeze(0)
        fallback = _clamp(torch.nan_to_num(picked, nan=0.0), bound)
        out.append(torch.where(found.reshape(*batch, *(1,) * len(core)), picked, fallback))
    return tuple(out) if isinstance(raw, tuple) else out[0]


def _clamp(x: Tensor, bound: float) -> Tensor:
    """``x`` clamped to ``[-bound, bound]``: real and imaginary parts alike for complex ``x``."""
    if x.is_complex():
        return torch.view_as_complex(torch.view_as_real(x).clamp(-bound, bound))
    return x.clamp(-bound, bound)


def haar_raw(
    inverse: Callable[[Tensor], Tensor],
    shape: torch.Size,
    generator: torch.Generator | None,
    dtype: torch.dtype,
    device: torch.device,
    rounds: int = INIT_ROUNDS,
    rotations: bool = False,
) -> Tensor:
    """``inverse`` of Haar draws of the trailing shape, in range (:func:`draw_in_range`).

    With ``rotations``, draws of determinant -1 have their first column negated first: Haar on
    the rotation group.

    Example:
      >>> raw = haar_raw(lambda q: q, torch.Size((2, 3, 3)), None, torch.float64,
      ...                torch.device("cpu"), rotations=True)
      >>> torch.linalg.det(raw).round(decimals=9)  # +1 to rounding, whatever the draw
      tensor([1., 1.], dtype=torch.float64)
    """

    def draw(batch: tuple[int, ...]) -> Tensor:
        q = haar_orthogonal(torch.Size((*batch, *shape[-2:])), generator, dtype, device)
        if rotations:
            q = flip_first_column(q, (torch.linalg.det(q) < 0)[..., None, None])
        return inverse(q)

    return draw_in_range(draw, tuple(shape[:-2]), rounds=rounds)
