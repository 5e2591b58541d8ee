"""Positive-definite matrices, strictly and with a documented eigenvalue floor."""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import Tensor

from . import _guards
from ._charts import POSITIVE_DEFINITE_CHARTS
from ._kernels import (
    add_to_diagonal,
    boundary_cholesky,
    eigen_reconstruct,
    eye_like,
    floor_from_mean,
    floor_margin,
    inverse_softplus,
    largest_entry_signs,
    lower_factor_raw,
    project_spectrum_to_floor,
    sym,
    tril_with_diagonal,
)
from ._packing import PackedTriangle, pack_lower
from ._rawform import RawShape, one_tensor
from ._structure import LINALG_DTYPES, AbstractStructure, close, default_tolerances
from ._validate import check_bool, check_choice, check_int, check_real
from .linalg import operators as ops

__all__ = ["CholeskyFactor", "Correlation", "PositiveDefinite", "PositiveSemidefinite"]

_PD_METHODS = tuple(POSITIVE_DEFINITE_CHARTS)


@dataclasses.dataclass(frozen=True)
class PositiveDefinite(PackedTriangle):
    """Symmetric positive-definite matrices with an eigenvalue floor.

    ``method="cholesky"`` (default): ``apply`` builds ``L`` from the raw lower triangle with
    diagonal ``softplus(raw_ii)`` and returns ``A = L Lᵀ + t I`` with
    ``t = floor + relative_floor * ‖L‖²_F / n``. ``method="expm"``: ``S`` is the symmetric
    matrix of the raw lower triangle and ``A = exp(S) + t I`` (computed as the Gram matrix of
    ``exp(S/2)``, so that rounding stays small next to the floor up to moderate n) with
    ``t = floor + relative_floor * trace(exp(S)) / n`` (the batched Padé exponential of this
    library; ``exp(S)`` overflows float32 once an eigenvalue of ``S`` passes about 88, so keep
    raw entries below about 80 / n; the range promised is the one ``fs.testing.CATALOG``
    documents). In float32 that advice is not enough at large n: the
    rounding of ``exp(S)``, relative to its largest eigenvalue, can exceed the floor ``t``,
    which is relative to the mean. Measured (float32 Cholesky of ``apply(raw)``): at n = 64 it
    succeeds for ``full(0.1)``, zeros and random raw of scale 1 and 5; at n = 256 it succeeds
    for zeros and random raw of scale 5 / n but fails for ``full(0.1)`` (one eigenvalue of
    ``S`` near 26, the others 0) and random raw of scale 5 (overflow). There, use float64, the
    Cholesky method or a larger ``relative_floor``. Either way, in exact arithmetic, every
    eigenvalue of ``A`` is at least ``floor`` and at least ``relative_floor`` times the mean
    eigenvalue of the base (``L Lᵀ`` or ``exp(S)``): the set is the symmetric matrices whose
    smallest eigenvalue is at least
    ``floor + relative_floor * (mean(eig(A)) - floor) / (1 + relative_floor)``, and
    ``inverse`` recovers the raw exactly (a Cholesky factorization of ``A - t I``, or its
    logarithm by ``eigh``). Both methods share ``contains``, ``project`` and the distribution
    of ``init`` members.

    The relative floor is what keeps the result positive-definite *in floating point*: without
    it, ``L Lᵀ`` from a raw triangle is only semi-definite (a zero on the raw diagonal makes it
    singular) and fails ``torch.linalg.cholesky`` in float32 for most random raw of scale 3 at
    n = 64. With the defaults, float32 Cholesky succeeds for raw of any magnitude (1e-30 to 1e4,
    zeros, -80 and -104 on the diagonal, rank-one raw) up to n = 256, measured; at n = 512
    rank-one raw of scale 100 can fail, so raise ``relative_floor`` there. The upper triangle of
    the raw matrix is unused; ``packed=True`` takes the lower triangle alone.

    Packed, the map is a bijection from the ``n(n+1)/2`` raw entries onto the set, and
    ``forward_and_log_det`` gives ``log|det J|`` to the member's lower triangle (row by row)
    in closed form: ``Σ log sigmoid(x_ii) + n log 2 + Σ (n - i) log L_ii + log(1 + r)``
    (``i`` from 0) for the Cholesky method, in O(n²); for ``"expm"``,
    ``(n + 1)/2 · tr S + Σ_{i<j} log(sinh(δ_ij/2) / (δ_ij/2)) + log(1 + r)`` with ``δ_ij``
    the differences of the eigenvalues of ``S`` (one ``eigvalsh``). Its gradient is right
    everywhere, but second derivatives (``hessian``) go through ``eigvalsh``'s, which are NaN
    where eigenvalues of ``S`` repeat (raw 0 among them): for Newton or Laplace steps on the
    log-det use the Cholesky method, whose log-det is smooth to every order.

    As a manifold (``fs.optim``): the affine-invariant metric ``tr(X⁻¹ U X⁻¹ W)``; tangent
    vectors are symmetric (projection ``sym(V)``), the Riemannian gradient is
    ``X sym(G) X``, the retraction the second-order ``X + V + V X⁻¹ V / 2`` (positive-definite
    for every symmetric ``V``; projected onto the floor if it falls below it), and transport
    the identity on symmetric matrices.

    Args:
      floor: absolute eigenvalue floor, > 0.
      relative_floor: eigenvalue floor relative to the mean eigenvalue of the base, >= 0;
        it bounds the condition number by about ``n / relative_floor``.
      method: ``"cholesky"`` or ``"expm"``.
      packed: the raw is the lower triangle, row by row (``n(n+1)/2`` entries).

    Example:
      >>> a = fs.PositiveDefinite().apply(torch.zeros(3, 3))
      >>> bool(torch.linalg.cholesky_ex(a).info == 0)
      True
      >>> torch.allclose(fs.PositiveDefinite().apply(fs.PositiveDefinite().inverse(a)), a)
      True
    """

    floor: float = 1e-6
    relative_floor: float = 1e-5
    method: str = "cholesky"
    packed: bool = False

    dtypes = LINALG_DTYPES

    def __post_init__(self) -> None:
        check_choice(self, "method", self.method, _PD_METHODS)
        check_real(self, "floor", self.floor, minimum=0, min_open=True)
        check_real(self, "relative_floor", self.relative_floor, minimum=0)
        check_bool(self, "packed", self.packed)

    def _apply(self, raw: Tensor) -> Tensor:
        chart = POSITIVE_DEFINITE_CHARTS[self.method]
        return chart.forward(self._full_raw(raw), self.floor, self.relative_floor)

    def _forward_and_log_det(self, raw: Tensor) -> tuple[Tensor, Tensor]:
        chart = POSITIVE_DEFINITE_CHARTS[self.method]
        assert chart.forward_and_log_det is not None
        return chart.forward_and_log_det(self._full_raw(raw), self.floor, self.relative_floor)

    def _log_det_coordinates(self, value: Tensor, tangent: Tensor) -> Tensor:
        return pack_lower(tangent, strict=False)

    # --------------------------------------------------------- capability "manifold"
    def _tangent(self, value: Tensor, vector: Tensor) -> Tensor:
        return sym(vector)

    def _riemannian_gradient(self, value: Tensor, grad: Tensor) -> Tensor:
        return value @ sym(grad) @ value

    def _retract(self, value: Tensor, step: Tensor) -> Tensor:
        step = sym(step)
        factor, _ = torch.linalg.cholesky_ex(value)
        w = torch.linalg.solve_triangular(factor, step, upper=False)
        moved = sym(value + step + w.mH @ w / 2)  # X + V + V X⁻¹ V / 2, positive-definite
        atol, rtol = default_tolerances(value.dtype)
        inside = self._contains(moved, atol, rtol)[..., None, None]
        # In float64: float32's eigh cannot place eigenvalues near the floor of a matrix of
        # condition 1e7 precisely enough for contains.
        wide = torch.complex128 if moved.is_complex() else torch.float64
        lifted = self._project(moved.to(wide)).to(moved.dtype)
        return torch.where(inside, moved, lifted)

    def _operator(self, raw: Tensor) -> ops.Operator:
        # The chart's factor is not the member's (the floor adds t I): one Cholesky of the member.
        return ops.PositiveDefinite(self._apply(raw))

    def _inverse(self, value: Tensor) -> Tensor:
        chart = POSITIVE_DEFINITE_CHARTS[self.method]
        return self._packed_raw(chart.inverse(value, self.floor, self.relative_floor))

    def _contains(self, value: Tensor, atol: float, rtol: float) -> Tensor:
        symmetric = close(value, value.mH, atol, rtol)
        diagonal = value.real.diagonal(dim1=-2, dim2=-1)
        shift = floor_from_mean(diagonal.mean(-1), self.floor, self.relative_floor)
        margin = floor_margin(shift, diagonal.abs().amax(-1), atol, rtol)
        lowest = add_to_diagonal(value, margin - shift)
        return symmetric & (torch.linalg.cholesky_ex(lowest).info == 0)

    def _project(self, value: Tensor) -> Tensor:
        return project_spectrum_to_floor(value, self.floor, self.relative_floor)

    def _entry_scale(self, value: Tensor) -> Tensor:
        """The least ``c > 0`` with ``c * value`` a member (inf if none): ``(..., 1, 1)``.

        ``λmin(c M) >= t(c M)`` reads ``c (λmin (1 + r) - r mean(diag M)) >= floor``.
        """
        r = self.relative_floor
        lowest = _guards.eigvalsh(value)[..., :1]
        mean = value.real.diagonal(dim1=-2, dim2=-1).mean(-1, keepdim=True)
        gap = (lowest * (1 + r) - r * mean).unsqueeze(-1)
        return torch.where(
            gap > 0, self.floor / gap.clamp_min(torch.finfo(value.dtype).tiny), torch.inf
        )

    def _init(self, shape, generator, dtype, device) -> Tensor:
        raw = lower_factor_raw(shape, generator, dtype, device)
        if self.method == "expm":  # the same members as the Cholesky method draws
            cholesky = POSITIVE_DEFINITE_CHARTS["cholesky"]
            return self._inverse(cholesky.forward(raw, self.floor, self.relative_floor))
        return self._packed_raw(raw)


@dataclasses.dataclass(frozen=True)
class PositiveSemidefinite(AbstractStructure):
    """Symmetric positive-semidefinite n x n matrices of rank at most ``rank``: ``A = F Fᵀ``.

    The raw is the factor ``F`` of shape ``(..., n, rank)`` (``(..., n, n)`` when ``rank`` is
    None: every PSD matrix), n x r numbers for a rank-r matrix. ``inverse`` is
    ``F = V_r √Λ_r`` from ``eigh``; ``project`` keeps the ``rank`` largest eigenvalues of the
    symmetric part, clipped at 0 (the nearest member). ``contains`` asks for symmetry,
    eigenvalues >= ``-(atol + rtol λ_max)`` and, past the rank, eigenvalues at most that size.

    Zero eigenvalues are saddles of the factor map, and no choice of factor avoids them:
    ``d(F Fᵀ) = dF Fᵀ + F dFᵀ`` vanishes on the null space of ``A = F Fᵀ`` whatever ``F`` is,
    so the rank cannot grow to first order, and at ``A = 0`` (where ``F = 0`` is the only
    factor) the gradient is zero in every direction. ``inverse(0)`` is therefore 0 and training
    from it never moves; start from ``init`` or from a full-rank member instead.

    Args:
      rank: the largest rank, or None for no bound.

    Example:
      >>> s = fs.PositiveSemidefinite(rank=1)
      >>> s.apply(torch.tensor([[1.0], [2.0]]))
      tensor([[1., 2.],
              [2., 4.]])
      >>> s.init((3, 3)).shape
      torch.Size([3, 1])
    """

    _no_log_det = (
        "F and F Q give the same F Fᵀ for every orthogonal Q, so apply is not one-to-one; for"
        " full-rank matrices use PositiveDefinite(packed=True)"
    )

    rank: int | None = None

    dtypes = LINALG_DTYPES
    square = True
    inverse_outside = "project"

    def __post_init__(self) -> None:
        check_int(self, "rank", self.rank, minimum=1, allow_none=True)

    def raw_shape(self, shape: tuple[int, ...]) -> RawShape:
        """The factor ``F``: ``n x rank`` (``n x n`` without a rank)."""
        if shape[-1] != shape[-2]:
            raise ValueError("needs a square matrix in its last two dims")
        return torch.Size([shape[-2], shape[-1] if self.rank is None else self.rank])

    def value_shape(self, raw_shape: RawShape) -> torch.Size:
        """``n x n`` for an ``n x rank`` factor with ``n >= rank``."""
        n, r = one_tensor(raw_shape, 2)
        if self.rank is None:
            if n != r:
                raise ValueError("needs a square matrix in its last two dims")
        elif r != self.rank:
            raise ValueError(f"needs an n x {self.rank} factor")
        elif n < self.rank:
            raise ValueError(f"has rank {self.rank} > n")
        return torch.Size([n, n])

    def _apply(self, raw: Tensor) -> Tensor:
        return raw @ raw.mT

    def _operator(self, raw: Tensor) -> ops.Operator:
        return ops.LowRank(raw, raw, symmetric=True)

    def _top(self, value: Tensor) -> tuple[Tensor, Tensor]:
        """The ``rank`` largest eigenvalues (clipped at 0) and their vectors."""
        eigenvalues, vectors = _guards.eigh(value)
        r = value.shape[-1] if self.rank is None else self.rank
        return eigenvalues[..., -r:].clamp_min(0), vectors[..., -r:]

    def _inverse(self, value: Tensor) -> Tensor:
        eigenvalues, vectors = self._top(value)
        vectors = vectors * largest_entry_signs(vectors)
        return vectors * eigenvalues.sqrt().unsqueeze(-2)

    def _contains(self, value: Tensor, atol: float, rtol: float) -> Tensor:
        symmetric = close(value, value.mT, atol, rtol)
        eigenvalues = _guards.eigvalsh(value)
        bound = atol + rtol * eigenvalues[..., -1:].abs()
        nonnegative = (eigenvalues >= -bound).all(-1)
        if self.rank is None:
            return symmetric & nonnegative
        tail = eigenvalues[..., : value.shape[-1] - self.rank]
        return symmetric & nonnegative & (tail <= bound).all(-1)

    def _project(self, value: Tensor) -> Tensor:
        eigenvalues, vectors = self._top(value)
        return eigen_reconstruct(vectors, eigenvalues)

    def _init(self, shape, generator, dtype, device) -> Tensor:
        *batch, n, _ = shape
        r = n if self.rank is None else self.rank
        raw = torch.randn(*batch, n, r, generator=generator, dtype=dtype, device=device)
        return raw / math.sqrt(r)


@dataclasses.dataclass(frozen=True)
class CholeskyFactor(PackedTriangle):
    """Lower-triangular matrices with diagonal at least ``floor`` > 0 (Cholesky factors).

    ``apply`` keeps the strict lower triangle of the raw matrix and puts
    ``softplus(raw_ii) + floor`` on the diagonal, so ``L Lᵀ`` is positive-definite with
    ``det = prod(L_ii)² > 0``; the raw upper triangle is unused. ``project`` zeroes the upper
    triangle and raises the diagonal to ``floor``. ``contains`` asks for a diagonal of at least
    ``floor / 2`` (a margin for rounding, independent of ``atol``: the zero matrix is not a
    member) and an upper triangle that is zero within tolerance.

    Packed, the raw is the lower triangle alone and ``forward_and_log_det`` gives
    ``Σ log sigmoid(raw_ii)``, the log-det from the raw entries to the factor's lower triangle.

    Args:
      floor: the smallest diagonal entry, > 0.
      packed: the raw is the lower triangle, row by row (``n(n+1)/2`` entries).

    Example:
      >>> fs.CholeskyFactor().apply(torch.zeros(2, 2)).diagonal()
      tensor([0.6931, 0.6931])
    """

    floor: float = 1e-6
    packed: bool = False

    dtypes = LINALG_DTYPES
    inverse_outside = "project"

    def __post_init__(self) -> None:
        check_real(self, "floor", self.floor, minimum=0, min_open=True)
        check_bool(self, "packed", self.packed)

    def _apply(self, raw: Tensor) -> Tensor:
        full = self._full_raw(raw)
        diag = F.softplus(full.diagonal(dim1=-2, dim2=-1)) + self.floor
        return tril_with_diagonal(full, diag)

    def _forward_and_log_det(self, raw: Tensor) -> tuple[Tensor, Tensor]:
        log_det = F.logsigmoid(self._full_raw(raw).diagonal(dim1=-2, dim2=-1)).sum(-1)
        return self._apply(raw), log_det

    def _log_det_coordinates(self, value: Tensor, tangent: Tensor) -> Tensor:
        return pack_lower(tangent, strict=False)

    def _operator(self, raw: Tensor) -> ops.Operator:
        return ops.Triangular(self._apply(raw), upper=False)

    def _inverse(self, value: Tensor) -> Tensor:
        tiny = torch.finfo(value.dtype).tiny
        diag = inverse_softplus((value.diagonal(dim1=-2, dim2=-1) - self.floor).clamp_min(tiny))
        return self._packed_raw(tril_with_diagonal(value, diag))

    def _contains(self, value: Tensor, atol: float, rtol: float) -> Tensor:
        lower = close(value, torch.tril(value), atol, rtol)
        # Like PositiveDefinite: the floor must hold with a margin of half of it. An absolute
        # tolerance (1e-4 in float32) would swamp a floor of 1e-6 and accept a zero diagonal.
        return lower & (value.diagonal(dim1=-2, dim2=-1) >= 0.5 * self.floor).all(-1)

    def _project(self, value: Tensor) -> Tensor:
        diag = value.diagonal(dim1=-2, dim2=-1).clamp_min(self.floor)
        return tril_with_diagonal(value, diag)

    def _entry_scale(self, value: Tensor) -> Tensor:
        """The least ``c > 0`` with ``c * value`` a member (inf if none): ``(..., 1, 1)``."""
        lowest = value.diagonal(dim1=-2, dim2=-1).amin(-1)[..., None, None]
        tiny = torch.finfo(value.dtype).tiny
        return torch.where(lowest > 0, self.floor / lowest.clamp_min(tiny), torch.inf)

    def _init(self, shape, generator, dtype, device) -> Tensor:
        return self._packed_raw(lower_factor_raw(shape, generator, dtype, device))


# Added to the softplus diagonal before the rows are normalized: softplus underflows to exactly 0
# for raw below about -104, and a row of zeros has no direction.
_DIAGONAL_OFFSET = 1e-6


def _unit_rows(raw: Tensor) -> Tensor:
    """Lower-triangular factor with diagonal ``softplus + 1e-6``, rows scaled to unit norm."""
    diag = F.softplus(raw.diagonal(dim1=-2, dim2=-1)) + _DIAGONAL_OFFSET
    factor = tril_with_diagonal(raw, diag)
    return factor / torch.linalg.vector_norm(factor, dim=-1, keepdim=True)


@dataclasses.dataclass(frozen=True)
class Correlation(PackedTriangle):
    """Correlation matrices: symmetric, unit diagonal, eigenvalues at least ``floor``.

    ``apply`` normalizes the rows of a lower-triangular factor ``L`` (diagonal
    ``softplus(raw_ii) + 1e-6``, never zero) so that ``L Lᵀ`` has a unit diagonal, and returns
    ``C = (1 - floor) L Lᵀ + floor I``: still unit-diagonal, with every eigenvalue at least
    ``floor``, which keeps float32 Cholesky working where ``L Lᵀ`` alone would be numerically
    singular. ``inverse`` is exact (a Cholesky factorization of ``(C - floor I) / (1 - floor)``).
    ``project`` runs 100 steps of Higham's alternating projections (with Dykstra's correction)
    between the matrices with eigenvalues >= ``floor`` and those with a unit diagonal, then clips
    blends with ``I`` just enough to lift the smallest eigenvalue to ``floor``, so it always
    lands in the set and fixes members; it is the nearest correlation matrix up to the
    convergence of those steps.

    ``packed=True`` takes the ``n(n-1)/2`` entries below the diagonal alone, and the factor's
    rows are ``[x_i, 1] / ‖[x_i, 1]‖`` (row ``i`` of ``L`` from the ``i`` raw entries of row
    ``i``): a bijection onto the set, whose ``forward_and_log_det`` to the member's strict lower
    triangle is ``(n + 1) Σ log L_ii + n(n-1)/2 · log(1 - floor)`` (each row's normalization
    contributes ``L_ii^(i+2)``, the map ``L -> L Lᵀ`` ``∏ L_ii^(n-1-i)``, ``i`` from 0). The
    full form's raw diagonal only scales rows, which normalizing undoes: it is not a bijection.

    Args:
      floor: the eigenvalue floor, in ``(0, 1)``.
      packed: the raw is the strict lower triangle, row by row (``n(n-1)/2`` entries).

    Example:
      >>> c = fs.Correlation().apply(torch.randn(3, 3))
      >>> torch.allclose(c.diagonal(), torch.ones(3))
      True
      >>> bool(torch.linalg.eigvalsh(c).min() > 0.9e-4)  # the floor, 1e-4, up to rounding
      True
    """

    floor: float = 1e-4
    packed: bool = False

    dtypes = LINALG_DTYPES
    _strict = True

    def __post_init__(self) -> None:
        check_real(self, "floor", self.floor, minimum=0, maximum=1, min_open=True, max_open=True)
        check_bool(self, "packed", self.packed)

    def _factor(self, raw: Tensor) -> tuple[Tensor, Tensor]:
        """The unit-row factor ``L`` and, packed, ``log L_ii`` (zeros for the full form)."""
        if not self.packed:
            factor = _unit_rows(raw)
            return factor, torch.zeros_like(factor[..., 0])
        full = self._full_raw(raw)
        rows = torch.tril(full, -1) + eye_like(full)
        norm = torch.linalg.vector_norm(rows, dim=-1, keepdim=True)
        return rows / norm, -norm.squeeze(-1).log()

    def _from_factor(self, factor: Tensor) -> Tensor:
        gram = (1 - self.floor) * (factor @ factor.mT)
        return add_to_diagonal(
            gram, torch.full(gram.shape[:-2], self.floor, dtype=gram.dtype, device=gram.device)
        )

    def _apply(self, raw: Tensor) -> Tensor:
        return self._from_factor(self._factor(raw)[0])

    def _forward_and_log_det(self, raw: Tensor) -> tuple[Tensor, Tensor]:
        factor, log_diagonal = self._factor(raw)
        n = factor.shape[-1]
        constant = n * (n - 1) / 2 * math.log1p(-self.floor)
        return self._from_factor(factor), (n + 1) * log_diagonal.sum(-1) + constant

    def _log_det_coordinates(self, value: Tensor, tangent: Tensor) -> Tensor:
        return pack_lower(tangent, strict=True)

    def _refusal(self, name: str) -> str | None:
        if name == "log_det" and not self.packed:
            return (
                "its raw diagonal only scales rows that are then normalized, so apply is not a "
                "bijection; use packed=True, whose raw is the strict lower triangle"
            )
        return super()._refusal(name)

    def _operator(self, raw: Tensor) -> ops.Operator:
        return ops.PositiveDefinite(self._apply(raw))

    def _inverse(self, value: Tensor) -> Tensor:
        shift = torch.full(value.shape[:-2], -self.floor, dtype=value.dtype, device=value.device)
        factor = boundary_cholesky(add_to_diagonal(value, shift) / (1 - self.floor), value)
        diag = factor.diagonal(dim1=-2, dim2=-1)
        if self.packed:  # row i is [x_i, 1] up to its norm
            return self._packed_raw(factor / diag.unsqueeze(-1))
        # Any positive multiple of a row normalizes to the same row: scale row i by
        # 1 + offset / L_ii, so that its diagonal minus the offset is exactly L_ii > 0.
        scale = (1 + _DIAGONAL_OFFSET / diag).unsqueeze(-1)
        return tril_with_diagonal(factor * scale, inverse_softplus(diag))

    def _entry_scale(self, value: Tensor) -> Tensor:
        """The one ``c > 0`` that may make ``c * value`` a member (unit diagonal): (..., 1, 1)."""
        mean = value.diagonal(dim1=-2, dim2=-1).mean(-1)[..., None, None]
        tiny = torch.finfo(value.dtype).tiny
        return torch.where(mean > 0, 1 / mean.clamp_min(tiny), torch.inf)

    def _contains(self, value: Tensor, atol: float, rtol: float) -> Tensor:
        symmetric = close(value, value.mT, atol, rtol)
        diag = value.diagonal(dim1=-2, dim2=-1)
        unit = ((diag - 1).abs() <= atol + rtol).all(-1)
        shift = torch.full(
            value.shape[:-2], -self.floor / 2, dtype=value.dtype, device=value.device
        )
        floor = torch.linalg.cholesky_ex(add_to_diagonal(value, shift)).info == 0
        return symmetric & unit & floor

    def _clip(self, value: Tensor) -> Tensor:
        eigenvalues, vectors = _guards.eigh(value)
        return eigen_reconstruct(vectors, eigenvalues.clamp_min(self.floor))

    def _project(self, value: Tensor) -> Tensor:
        y = (value + value.mT) / 2
        correction = torch.zeros_like(y)
        for _ in range(100):
            r = y - correction
            x = self._clip(r)
            correction = x - r
            y = x - torch.diag_embed(x.diagonal(dim1=-2, dim2=-1) - 1)
        # y has a unit diagonal; blend it with I, which keeps that diagonal, just enough to lift
        # its smallest eigenvalue to floor (alpha = 0, y unchanged, for members).
        y = (y + y.mT) / 2
        smallest = _guards.eigvalsh(y)[..., :1].unsqueeze(-1)
        alpha = ((self.floor - smallest) / (1 - smallest)).clamp(0, 1)
        return (1 - alpha) * y + alpha * eye_like(y)

    def _init(self, shape, generator, dtype, device) -> Tensor:
        # Its diagonal is softplus⁻¹(1): packed, the rows [x_i, 1] are the same directions.
        return self._packed_raw(lower_factor_raw(shape, generator, dtype, device))
