"""Rank, invertibility and norm bounds: matrices described by their singular values.

``LowRank`` and ``FixedRank`` are factored structures (their raw is a tuple of tensors, so a
rank-r n x m matrix costs r(n + m) numbers, not nm); ``Invertible`` and ``SpecialLinear`` are
polar decompositions ``Q P`` with ``P`` positive-definite; ``BoundedSpectralNorm`` rescales.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from . import _guards
from ._charts import (
    ORTHOGONAL_CHARTS,
    POSITIVE_DEFINITE_CHARTS,
    ROTATION_CHARTS,
    UNIT_DETERMINANT_STRETCH_CHARTS,
)
from ._kernels import (
    draw_in_range,
    flip_smallest_where_reflection,
    floor_from_mean,
    floor_margin,
    haar_orthogonal,
    haar_raw,
    inverse_softplus,
    largest_entry_signs,
    lift_to_floor,
    lower_factor_raw,
    polar,
    project_spectrum_to_floor,
    rounding_level,
    svd_reconstruct,
    truncated_svd,
)
from ._rawform import RawShape, one_tensor, parts_of
from ._structure import (
    COMPLEX_DTYPES,
    LINALG_DTYPES,
    AbstractStructure,
    default_tolerances,
    finite_or_zero,
)
from ._validate import check_int, check_real
from .linalg import operators as ops

__all__ = ["BoundedSpectralNorm", "FixedRank", "Invertible", "LowRank", "SpecialLinear"]

_FRAME = ORTHOGONAL_CHARTS["cayley"]
"""Orthonormal frames (square or tall) of FixedRank and the orthogonal factor of Invertible."""

_ROTATION = ROTATION_CHARTS["cayley"]
"""The rotation factor of SpecialLinear."""

_STRETCH = POSITIVE_DEFINITE_CHARTS["cholesky"]
"""The positive-definite factor of Invertible."""

_UNIT_STRETCH = UNIT_DETERMINANT_STRETCH_CHARTS["expm"]
"""The positive-definite factor of SpecialLinear."""


def _check_rank(owner: AbstractStructure, rank: object) -> None:
    check_int(owner, "rank", rank, minimum=1)


def _check_floors(owner: AbstractStructure, floor: object, relative_floor: object) -> None:
    check_real(owner, "floor", floor, minimum=0, min_open=True)
    check_real(owner, "relative_floor", relative_floor, minimum=0)


class _Pair(NamedTuple):
    """The raw form of ``LowRank``: its parts' core shapes, by name (for error messages)."""

    left: torch.Size
    right: torch.Size


class _Triple(NamedTuple):
    """The raw form of ``FixedRank``."""

    left: torch.Size
    singular: torch.Size
    right: torch.Size


class _Polar(NamedTuple):
    """The raw form of ``Invertible`` and ``SpecialLinear``."""

    orthogonal: torch.Size
    stretch: torch.Size


def _factored_value_shape(left: RawShape, right: RawShape, rank: int) -> torch.Size:
    """``m x n`` for factors ``left`` (m x rank) and ``right`` (n x rank), or why not."""
    left, right = one_tensor(left, 2), one_tensor(right, 2)
    if left[-1] != rank or right[-1] != rank:
        raise ValueError(f"parts need {rank} columns each (left m x {rank}, right n x {rank})")
    if rank > min(left[-2], right[-2]):
        raise ValueError(f"has rank {rank} > min(rows, columns)")
    return torch.Size([left[-2], right[-2]])


def _tail_is_small(singular: Tensor, rank: int, atol: float, rtol: float) -> Tensor:
    """Whether the singular values past the first ``rank`` are zero within tolerance."""
    tail = singular[..., rank:]
    return (tail <= atol + rtol * singular[..., :1]).all(-1)


@dataclasses.dataclass(frozen=True)
class LowRank(AbstractStructure):
    """n x m matrices of rank at most ``rank``, from a pair of factors: ``A = left @ rightᵀ``.

    The raw is the tuple ``(left, right)`` of shapes ``(..., n, rank)`` and ``(..., m, rank)``:
    r(n + m) numbers. ``project`` is the truncated SVD (Eckart-Young: the nearest matrix of
    rank <= r); ``contains`` asks that the singular values past the r-th be below
    ``atol + rtol * σ₁``. ``init`` draws Gaussian factors scaled so that entries of ``A`` have
    variance ``1 / m``, so each factor column has norm about ``c = √n (r m)^(-1/4)``.

    ``inverse`` gives the balanced factors ``u_j √s_j`` and ``v_j √s_j`` of the SVD for
    singular values ``s_j >= c²``, and ``c u_j``, ``(s_j / c) v_j`` below that. Balanced factors
    of a zero singular value would be two zero columns, where the gradient of ``left @ rightᵀ``
    vanishes in every direction (a saddle: training would never move them); this way the zero
    matrix, or a rank-deficient member, comes back as LoRA starts, left columns of init's size
    on singular vectors and right columns zero, with the product unchanged and a non-zero
    gradient for ``right``.

    Args:
      rank: the largest rank, at most ``min(n, m)``.

    Example:
      >>> s = fs.LowRank(1)
      >>> s.apply((torch.tensor([[1.0], [2.0]]), torch.tensor([[3.0], [4.0]])))
      tensor([[3., 4.],
              [6., 8.]])
      >>> left, right = s.init((5, 4))
      >>> left.shape, right.shape
      (torch.Size([5, 1]), torch.Size([4, 1]))
    """

    _no_log_det = (
        "(U G, V G⁻ᵀ) give the same U Vᵀ for every invertible G (gauge freedom), so apply is "
        "not one-to-one; for covariances use PositiveDefinite(packed=True)"
    )

    rank: int

    dtypes = LINALG_DTYPES + COMPLEX_DTYPES
    inverse_outside = "project"

    def __post_init__(self) -> None:
        _check_rank(self, self.rank)

    def raw_shape(self, shape: tuple[int, ...]) -> RawShape:
        """``(left, right)``: ``m x rank`` and ``n x rank`` for an ``m x n`` value."""
        return _Pair(torch.Size([shape[-2], self.rank]), torch.Size([shape[-1], self.rank]))

    def value_shape(self, raw_shape: RawShape) -> torch.Size:
        """``m x n`` for factors ``m x rank`` and ``n x rank``, ``rank <= min(m, n)``."""
        left, right = parts_of(raw_shape)
        return _factored_value_shape(left, right, self.rank)

    def _apply(self, raw: tuple[Tensor, ...]) -> Tensor:
        left, right = raw
        return left @ right.mT

    def _operator(self, raw: tuple[Tensor, ...]) -> ops.Operator:
        left, right = raw
        return ops.LowRank(left, right)

    def _inverse(self, value: Tensor) -> tuple[Tensor, Tensor]:
        r = self.rank
        u, s, v = truncated_svd(value, r)
        u, v = _signed(u, v)
        s = s.unsqueeze(-2)
        # Balanced columns down to init's column norm c; below it, c on the left and s / c on
        # the right, so that zero singular values do not give two zero columns (a saddle).
        n, m = value.shape[-2:]
        left = s.sqrt().clamp_min(math.sqrt(n) * (r * m) ** -0.25)
        return u * left, v * (s / left)

    def _contains(self, value: Tensor, atol: float, rtol: float) -> Tensor:
        return _tail_is_small(_guards.svdvals(value), self.rank, atol, rtol)

    def _project(self, value: Tensor) -> Tensor:
        u, s, v = truncated_svd(value, self.rank)
        return svd_reconstruct(u, s, v.mT)

    def _init(self, shape, generator, dtype, device) -> tuple[Tensor, Tensor]:
        *batch, n, m = shape
        scale = (self.rank * m) ** -0.25
        left = torch.randn(*batch, n, self.rank, generator=generator, dtype=dtype, device=device)
        right = torch.randn(*batch, m, self.rank, generator=generator, dtype=dtype, device=device)
        return scale * left, scale * right


@dataclasses.dataclass(frozen=True)
class FixedRank(AbstractStructure):
    """n x m matrices of rank exactly ``rank``, singular values bounded away from zero.

    The raw is ``(left, singular, right)`` of shapes ``(..., n, r)``, ``(..., r)`` and
    ``(..., m, r)``: ``U`` and ``V`` are orthonormal frames by the Cayley map of
    ``Orthogonal`` (tall raw) and ``A = U diag(σ) Vᵀ`` with ``σ = softplus(singular) + t``,
    ``t = floor + relative_floor * mean(softplus(singular))``. So the nonzero singular values
    are exactly ``σ``, each at least ``floor`` and ``relative_floor`` times their mean: the
    condition number of the rank-r part stays below about ``r / relative_floor`` for raw of any
    size, which keeps the rank numerically exact in float32. ``inverse`` recovers ``σ`` and
    the frames from the SVD, in float64 (the SVD's freedom, a joint rotation within equal
    singular values, is spent keeping the frames inside the Cayley charts); ``project`` is the
    truncated SVD with ``σ`` lifted to the floor (the nearest member).
    The frames inherit the Cayley map's range (the ``max_magnitude`` ``fs.testing.CATALOG``
    documents for ``left``/``right``).

    As a manifold (``fs.optim``, on the member ``A`` itself): the metric of the embedding,
    tangent projection ``P_U Z + Z P_V - P_U Z P_V`` (``U``, ``V`` the singular vectors of
    ``A``), the orthographic retraction ``(A + Z) V (Uᵀ(A + Z)V)⁻¹ Uᵀ(A + Z)`` (rank ``r``,
    smooth; projected onto the floor if it falls below it) and transport by projection.

    Args:
      rank: the rank, at most ``min(n, m)``.
      floor: absolute floor of the nonzero singular values, > 0.
      relative_floor: floor relative to their mean, >= 0.

    Example:
      >>> s = fs.FixedRank(2)
      >>> a = s.apply(s.init((4, 3), generator=torch.Generator().manual_seed(0)))
      >>> int(torch.linalg.matrix_rank(a))
      2
    """

    _no_log_det = (
        "its factors have gauge freedom (rotations of the singular vectors with equal "
        "singular values, signs), so apply is not one-to-one"
    )

    rank: int
    floor: float = 1e-6
    relative_floor: float = 1e-3

    dtypes = LINALG_DTYPES

    def __post_init__(self) -> None:
        _check_rank(self, self.rank)
        _check_floors(self, self.floor, self.relative_floor)

    def raw_shape(self, shape: tuple[int, ...]) -> RawShape:
        """``(left, singular, right)``: ``m x rank``, ``rank`` and ``n x rank``."""
        r = self.rank
        return _Triple(torch.Size([shape[-2], r]), torch.Size([r]), torch.Size([shape[-1], r]))

    def value_shape(self, raw_shape: RawShape) -> torch.Size:
        """``m x n`` for frames ``m x rank``, ``n x rank`` and ``rank`` singular values."""
        left, singular, right = parts_of(raw_shape)
        if singular != torch.Size([self.rank]):
            raise ValueError(
                f"part 'singular' needs shape (..., {self.rank}) with the frames' batch dims"
            )
        return _factored_value_shape(left, right, self.rank)

    def _shift_from_sigma(self, sigma: Tensor) -> Tensor:
        """The shift ``t`` of singular values ``σ`` (..., r), shape (..., 1)."""
        return floor_from_mean(sigma.mean(-1, keepdim=True), self.floor, self.relative_floor)

    def _apply(self, raw: tuple[Tensor, ...]) -> Tensor:
        return svd_reconstruct(*self._factors(raw))

    def _factors(self, raw: tuple[Tensor, ...]) -> tuple[Tensor, Tensor, Tensor]:
        """``U``, ``σ`` and ``Vᵀ`` of the member ``U diag(σ) Vᵀ``."""
        left, singular, right = raw
        lifted = F.softplus(singular)
        sigma = lifted + (self.floor + self.relative_floor * lifted.mean(-1, keepdim=True))
        return _FRAME.forward(left), sigma, _FRAME.forward(right).mT

    def _operator(self, raw: tuple[Tensor, ...]) -> ops.Operator:
        u, sigma, vt = self._factors(raw)
        return ops.LowRank(u * sigma.unsqueeze(-2), vt.mT)

    def _frames(self, value: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``U``, ``σ``, ``V`` of the rank-r SVD, turned into the Cayley charts of the frames.

        The SVD is unique only up to a joint rotation ``(U R, V R)`` within each group of
        equal singular values (signs, for distinct ones). Of those, take the ``R`` that makes
        ``(U₁ + V₁) R`` symmetric positive semidefinite (``U₁``, ``V₁`` the top r x r blocks;
        the polar factor, restricted to the groups): it keeps ``U₁ + I`` and ``V₁ + I``
        invertible, which the Cayley charts need, and brings the zeros raw (frames: the first
        columns of ``I``) back exactly, whatever order and signs LAPACK returns.
        """
        r = self.rank
        u, s, v = truncated_svd(value, r)
        tolerance = 64 * torch.finfo(value.dtype).eps * s[..., :1, None]
        same = (s.unsqueeze(-1) - s.unsqueeze(-2)).abs() <= tolerance
        grouped = torch.where(same, u[..., :r, :] + v[..., :r, :], 0.0)
        w, _, zh = _guards.svd(grouped.mT)
        rotation = w @ zh
        return u @ rotation, s, v @ rotation

    def _inverse(self, value: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        # In float64: the frames of a float32 member from a float32 SVD, and their Cayley
        # raw, lose digits (round trips off by about 2e-4).
        u, sigma, v = self._frames(value.to(torch.float64))
        lifted = sigma - self._shift_from_sigma(sigma)
        # A singular value on the floor (softplus underflowed to 0) comes back a few ulps of
        # the value's dtype below it: raise it to the smallest positive number, as
        # CholeskyFactor does; NaN for values clearly below the floor (non-members).
        level = 8 * rounding_level(sigma[..., :1], max(value.shape[-2:]), value.dtype)
        lifted = torch.where(
            lifted >= -level, lifted.clamp_min(torch.finfo(lifted.dtype).tiny), math.nan
        )
        left, singular, right = _FRAME.inverse(u), inverse_softplus(lifted), _FRAME.inverse(v)
        return left.to(value.dtype), singular.to(value.dtype), right.to(value.dtype)

    def _contains(self, value: Tensor, atol: float, rtol: float) -> Tensor:
        s = _guards.svdvals(value)
        r = self.rank
        shift = self._shift_from_sigma(s[..., :r])[..., 0]
        floor_holds = s[..., r - 1] >= shift - floor_margin(shift, s[..., 0], atol, rtol)
        return floor_holds & _tail_is_small(s, r, atol, rtol)

    def _project(self, value: Tensor) -> Tensor:
        u, sigma, v = truncated_svd(value, self.rank)
        lifted = lift_to_floor(sigma, self.floor, self.relative_floor)
        return svd_reconstruct(u, lifted, v.mT)

    # --------------------------------------------------------- capability "manifold"
    def _tangent(self, value: Tensor, vector: Tensor) -> Tensor:
        u, _, v = truncated_svd(value, self.rank)
        left = u @ (u.mT @ vector)
        return left + (vector - left) @ v @ v.mT

    def _retract(self, value: Tensor, step: Tensor) -> Tensor:
        # The orthographic retraction (Absil and Oseledets): (X + Z) V (Uᵀ (X + Z) V)⁻¹ Uᵀ (X + Z),
        # rank r and smooth in Z, with no SVD of the moved point (whose derivative would divide
        # by the zero singular values' differences).
        u, _, v = truncated_svd(value, self.rank)
        moved = value + step
        core, info = torch.linalg.inv_ex(u.mT @ moved @ v)
        result = (moved @ v) @ core @ (u.mT @ moved)
        # Uᵀ(X + Z)V singular (Z = -X, say): no orthographic point; the projection of X + Z.
        ok = (info == 0) & torch.isfinite(result).flatten(-2).all(-1)
        result = torch.where(ok[..., None, None], result, moved)
        atol, rtol = default_tolerances(value.dtype)
        inside = self._contains(result, atol, rtol)[..., None, None]
        lifted = self._project(result.to(torch.float64)).to(result.dtype)
        return torch.where(inside, result, lifted)

    def _init(self, shape, generator, dtype, device) -> tuple[Tensor, Tensor, Tensor]:
        *_, n, m = shape
        r = self.rank

        def draw(batch: tuple[int, ...]) -> tuple[Tensor, Tensor, Tensor]:
            left = haar_orthogonal(torch.Size((*batch, n, r)), generator, dtype, device)
            right = haar_orthogonal(torch.Size((*batch, m, r)), generator, dtype, device)
            # Singular values log-uniform in [1/2, 2].
            sigma = 2 ** (
                2 * torch.rand(*batch, r, generator=generator, dtype=dtype, device=device) - 1
            )
            return self._inverse((left * sigma.unsqueeze(-2)) @ right.mT)

        return draw_in_range(draw, tuple(shape[:-2]))


@dataclasses.dataclass(frozen=True)
class Invertible(AbstractStructure):
    """Square matrices with every singular value above a floor: ``A = Q P`` (polar form).

    The raw is ``(orthogonal, stretch)``, two n x n tensors: ``Q`` is ``Orthogonal()`` of the
    first (both determinant signs) and ``P`` is ``PositiveDefinite(floor, relative_floor)`` of
    the second. Every invertible matrix has a unique polar decomposition, so every invertible
    matrix whose singular values satisfy ``P``'s floors is reached (except those whose ``Q``
    has an eigenvalue -1, which the Cayley map misses: ``inverse`` gives NaN there). The
    singular values of ``A`` are the eigenvalues of ``P``: ``|det A| >= floor^n`` and the
    condition number stays below about ``n / relative_floor`` for raw of any size.
    ``project`` lifts the singular values to the floor (the nearest member).

    Args:
      floor: absolute floor of the singular values, > 0.
      relative_floor: floor relative to the mean singular value, >= 0.

    Example:
      >>> s = fs.Invertible()
      >>> a = s.apply((torch.randn(3, 3), torch.zeros(3, 3)))
      >>> bool(torch.linalg.svdvals(a).min() > 0.1)
      True
    """

    _no_log_det = "its polar raw is not packed (unused entries), so apply is not a bijection"

    floor: float = 1e-6
    relative_floor: float = 1e-3

    dtypes = LINALG_DTYPES
    square = True

    def __post_init__(self) -> None:
        _check_floors(self, self.floor, self.relative_floor)

    def __setstate__(self, state: dict) -> None:
        # Pickles of version 0.1.0 also carry a derived PositiveDefinite, ``_stretch``.
        self.__dict__.update({k: v for k, v in state.items() if k != "_stretch"})

    def raw_shape(self, shape: tuple[int, ...]) -> RawShape:
        """Two ``n x n`` raws: the orthogonal factor's and the stretch's."""
        if shape[-1] != shape[-2]:
            raise ValueError("needs a square matrix in its last two dims")
        return _Polar(torch.Size(shape), torch.Size(shape))

    def value_shape(self, raw_shape: RawShape) -> torch.Size:
        """``n x n`` for two ``n x n`` raws."""
        return _square_pair(raw_shape)

    def _apply(self, raw: tuple[Tensor, ...]) -> Tensor:
        orthogonal, stretch = raw
        return _FRAME.forward(orthogonal) @ _STRETCH.forward(
            stretch, self.floor, self.relative_floor
        )

    def _inverse(self, value: Tensor) -> tuple[Tensor, Tensor]:
        # The polar factors and Q's raw in float64 (as FixedRank); P's raw in the value's
        # dtype, whose rounding sizes the boundary jitter of the stretch chart's inverse.
        q, p = polar(value.to(torch.float64))
        stretch = _STRETCH.inverse(p.to(value.dtype), self.floor, self.relative_floor)
        return _FRAME.inverse(q).to(value.dtype), stretch

    def _contains(self, value: Tensor, atol: float, rtol: float) -> Tensor:
        s = _guards.svdvals(value)
        shift = floor_from_mean(s.mean(-1), self.floor, self.relative_floor)
        return s[..., -1] >= shift - floor_margin(shift, s[..., 0], atol, rtol)

    def _project(self, value: Tensor) -> Tensor:
        q, p = polar(value)
        return q @ project_spectrum_to_floor(p, self.floor, self.relative_floor)

    def _init(self, shape, generator, dtype, device) -> tuple[Tensor, Tensor]:
        stretch = lower_factor_raw(shape, generator, dtype, device)
        orthogonal = haar_raw(_FRAME.inverse, shape, generator, dtype, device, _FRAME.init_rounds)
        return orthogonal, stretch


@dataclasses.dataclass(frozen=True)
class SpecialLinear(AbstractStructure):
    """Square matrices of determinant 1: ``A = Q exp(S)`` with ``Q`` a rotation, ``tr S = 0``.

    The raw is ``(rotation, stretch)``, two n x n tensors: ``Q`` is ``SpecialOrthogonal()`` of
    the first; ``S`` is the symmetric matrix of the second's lower triangle minus its mean
    diagonal, so ``det exp(S) = exp(tr S) = 1`` and ``det A = 1`` up to rounding. Every matrix
    of determinant 1 is reached (its polar factor is ``exp`` of a traceless symmetric matrix;
    rotations with an eigenvalue -1 are out of the Cayley map's reach, ``inverse`` gives NaN
    there). The condition number is ``exp(λ_max(S) - λ_min(S))``, and the eigenvalues of ``S``
    grow like the raw scale times ``√n``: float32 holds ``det = 1`` within ``contains``'s
    tolerance for stretch raw entries up to the ``max_magnitude`` ``fs.testing.CATALOG``
    documents (with its ``core_shapes``). Beyond it ``apply`` still returns finite matrices (up
    to its ``finite_magnitude``) but rounding lets the determinant drift from 1, far at large
    n (det was measured up to 1e70 at n = 64 for stretch raw of scale 1): scale the stretch
    raw down by ``√n``, as ``init`` does, or use float64. ``contains``
    accepts ``|log det v| <= Σ |v⁻ᵀ| (atol + rtol |v|)``, the change of log det that entrywise
    tolerances reach, to first order. ``project`` takes the polar factors of ``v`` (flipping
    the direction of the smallest singular value where ``det v < 0``) and rescales the singular
    values by ``|det v|^(-1/n)``, after raising those below ``eps^(1/3)`` times the largest:
    a member near ``v``, not always the nearest; members whose condition number is below
    ``eps^(-1/3)`` (200 in float32) are fixed points.

    Example:
      >>> a = fs.SpecialLinear().apply((torch.randn(3, 3), torch.randn(3, 3)))
      >>> round(float(torch.linalg.det(a)), 3)
      1.0
    """

    _no_log_det = "its polar raw is not packed (unused entries), so apply is not a bijection"

    dtypes = LINALG_DTYPES
    square = True

    def raw_shape(self, shape: tuple[int, ...]) -> RawShape:
        """Two ``n x n`` raws: the orthogonal factor's and the stretch's."""
        return _Polar(torch.Size(shape), torch.Size(shape))

    def value_shape(self, raw_shape: RawShape) -> torch.Size:
        """``n x n`` for two ``n x n`` raws."""
        return _square_pair(raw_shape)

    def _apply(self, raw: tuple[Tensor, ...]) -> Tensor:
        rotation, stretch = raw
        return _ROTATION.forward(rotation) @ _UNIT_STRETCH.forward(stretch)

    def _inverse(self, value: Tensor) -> tuple[Tensor, Tensor]:
        # In float64: the polar factors of an ill-conditioned float32 member lose digits.
        q, p = polar(value.to(torch.float64))
        return _ROTATION.inverse(q).to(value.dtype), _UNIT_STRETCH.inverse(p).to(value.dtype)

    def _contains(self, value: Tensor, atol: float, rtol: float) -> Tensor:
        # Within tolerance of a member, to first order: an entrywise change of up to
        # atol + rtol |v| moves log det v by up to sum |v⁻ᵀ| (atol + rtol |v|).
        value = finite_or_zero(value)
        sign, log_abs = torch.linalg.slogdet(value)
        inverse, info = torch.linalg.inv_ex(value)
        reach = (inverse.mT.abs() * (atol + rtol * value.abs())).sum((-2, -1))
        # That first-order reach means nothing once it is large (a nearly singular value, whose
        # inverse is huge): beyond 0.1 in log det, no tolerance makes a matrix a member.
        return (info == 0) & (sign > 0) & (log_abs.abs() <= reach.clamp(max=0.1))

    def _project(self, value: Tensor) -> Tensor:
        u, s, vh = _guards.svd(value)
        # Where det(v) < 0, the nearest matrix of positive determinant; then scale the singular
        # values to product 1.
        u = flip_smallest_where_reflection(u, vh)
        # Singular values below eps^(1/3) of the largest (5e-3 in float32, 6e-6 in float64)
        # are raised to it: more ill-conditioned results would not survive their own SVD, and
        # project would not be idempotent.
        tiny = torch.finfo(value.dtype).eps ** (1 / 3) * s[..., :1]
        s = torch.maximum(s, tiny.clamp_min(torch.finfo(value.dtype).tiny))
        s = s * torch.exp(-s.log().mean(-1, keepdim=True))
        return svd_reconstruct(u, s, vh)

    def _init(self, shape, generator, dtype, device) -> tuple[Tensor, Tensor]:
        rotation = haar_raw(_ROTATION.inverse, shape, generator, dtype, device, rotations=True)
        n = shape[-1]
        stretch = torch.randn(shape, generator=generator, dtype=dtype, device=device)
        return rotation, stretch / (2 * math.sqrt(n))


@dataclasses.dataclass(frozen=True)
class BoundedSpectralNorm(AbstractStructure):
    """Matrices of spectral norm (largest singular value) at most ``max_norm``.

    ``apply`` divides the raw by ``max(1, σ₁(raw) / max_norm)``: members map to themselves
    (``inverse`` is the identity), others are scaled onto the boundary, as spectral
    normalization does, but with the exact ``σ₁`` from ``torch.linalg.svdvals`` rather than a
    power-iteration estimate. A layer with this weight is ``max_norm``-Lipschitz. ``project``
    clips the singular values at ``max_norm`` (the nearest member, which differs from the
    scaling of ``apply``).

    Args:
      max_norm: the bound, > 0.

    Example:
      >>> w = fs.BoundedSpectralNorm(1.0).apply(torch.tensor([[3.0, 0.0], [0.0, 1.0]]))
      >>> w
      tensor([[1.0000, 0.0000],
              [0.0000, 0.3333]])
    """

    _no_log_det = (
        "the norm clipping maps every raw of larger norm onto the boundary, so apply is not "
        "one-to-one"
    )

    max_norm: float = 1.0

    dtypes = LINALG_DTYPES

    def __post_init__(self) -> None:
        check_real(self, "max_norm", self.max_norm, minimum=0, min_open=True)

    def _apply(self, raw: Tensor) -> Tensor:
        top = _guards.svdvals(raw)[..., 0]  # NaN for non-finite raw
        return raw / torch.clamp(top / self.max_norm, min=1.0)[..., None, None]

    def _inverse(self, value: Tensor) -> Tensor:
        return value.clone()

    def _contains(self, value: Tensor, atol: float, rtol: float) -> Tensor:
        top = _guards.svdvals(value)[..., 0]
        return top <= self.max_norm * (1 + rtol) + atol

    def _project(self, value: Tensor) -> Tensor:
        u, s, vh = _guards.svd(value)
        return svd_reconstruct(u, torch.clamp(s, max=self.max_norm), vh)

    def _init(self, shape, generator, dtype, device) -> Tensor:
        n, m = shape[-2:]
        raw = torch.randn(shape, generator=generator, dtype=dtype, device=device)
        return raw * (self.max_norm / (math.sqrt(n) + math.sqrt(m)))


def _signed(u: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
    """Singular vector pairs signed so that each column of ``u`` has a positive largest entry.

    ``v`` takes the conjugate phase, so that ``u diag(s) vᵀ`` keeps its value.
    """
    sign = largest_entry_signs(u)
    return u * sign, v * sign.conj()


def _square_pair(raw_shape: RawShape) -> torch.Size:
    """``n x n`` for two ``n x n`` raws, or why not."""
    first, second = parts_of(raw_shape)
    first = one_tensor(first, 2)
    if first != second or first[-1] != first[-2]:
        raise ValueError("parts need two square matrices of the same shape")
    return first
