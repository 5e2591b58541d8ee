"""Orthogonal matrices and orthonormal frames (the Stiefel manifold)."""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import Tensor

from . import _guards
from ._charts import ORTHOGONAL_CHARTS, ROTATION_CHARTS
from ._kernels import draw_in_range as draw_in_range
from ._kernels import (
    eye_like,
    flip_first_column,
    flip_smallest_where_reflection,
    haar_raw,
    polar_factor,
    qr_frame,
    sym,
)
from ._packing import PackedTriangle, pack_lower
from ._rawform import RawShape, one_tensor
from ._structure import LINALG_DTYPES, AbstractStructure, close
from ._validate import check_bool, check_choice
from .linalg import operators as ops

__all__ = ["Orthogonal", "SpecialOrthogonal"]

_METHODS = tuple(ORTHOGONAL_CHARTS)


def frame_shape(raw_shape: RawShape, method: str) -> torch.Size:
    """The value shape of an orthonormal-frame raw: square or tall, square for ``"expm"``.

    Shared by ``Orthogonal`` and ``Unitary``; raises ``ValueError`` saying why a shape is refused.
    """
    raw_shape = one_tensor(raw_shape, 2)
    if raw_shape[-2] < raw_shape[-1]:
        raise ValueError("needs a square or tall matrix (rows >= columns; transpose a wide one)")
    if method == "expm" and raw_shape[-2] != raw_shape[-1]:
        raise ValueError(
            "with method 'expm' needs a square matrix (tall ones: 'cayley', 'householder')"
        )
    return raw_shape


@dataclasses.dataclass(frozen=True)
class Orthogonal(AbstractStructure):
    """Matrices with orthonormal columns, ``QᵀQ = I``: square (both determinants) or tall.

    The raw has the shape of ``Q``; a square ``Q`` is an orthogonal matrix, a tall one (more
    rows than columns) a point of the Stiefel manifold. Three maps, all smooth with finite
    gradients everywhere:

    - ``"cayley"`` (default, the fastest at n >= 64): ``A`` is the skew-symmetric matrix of the
      strict lower raw triangle (zero-padded to n x n for tall raw) and ``Q`` is the first columns
      of ``(I + A)(I - A)⁻¹ = 2 (I - A)⁻¹ - I``, computed with ``torch.linalg.inv_ex``
      (``vmap(jacfwd(torch.linalg.solve))`` is silently wrong). Orthogonality
      degrades as ``eps * ‖raw‖``: it holds to float32 precision for raw entries up to the
      ``max_magnitude`` ``fs.testing.CATALOG`` documents. Rotations with an eigenvalue -1
      (such as ``-I`` for even n) are out of its reach: ``inverse`` gives NaN raw there.
    - ``"expm"`` (square only): ``Q = exp(A)``, by the batched Padé exponential of this library
      (8 squarings; accurate while the 1-norm of ``A`` is below about 1000 in float32; the
      raw range promised is the one ``fs.testing.CATALOG`` documents). ``inverse`` is the
      principal matrix logarithm (polar square roots, then the inverse Cayley series),
      computed in float64.
    - ``"householder"``: ``Q = -H₁ ⋯ H_k`` (first columns), each ``H_j`` the reflection along
      the raw column ``j`` below the diagonal with a unit in the diagonal slot
      (``torch.linalg.householder_product``). Raw zero gives the identity. Columns that would
      need a reflection along ``e_j`` itself are out of reach (``inverse`` gives NaN).

    For square ``Q``, a negative ``raw[0, 0]`` negates the first column, which reaches
    determinant -1; the rest of the raw diagonal is unused (all of it for tall raw, whose set
    is connected). ``init`` is Haar-distributed, conditioned on raw entries of at most 100
    (``draw_in_range``); ``project`` is the polar factor ``U Vᵀ`` of the thin SVD ``U S Vᵀ``.

    As a manifold (capability ``"manifold"``, for ``fs.optim``): the metric of the embedding,
    tangent projection ``V - X sym(XᵀV)``, the QR retraction ``qf(X + V)`` (``R`` with a
    positive diagonal), and transport by projection onto the new tangent space.

    Args:
      method: ``"cayley"``, ``"expm"`` or ``"householder"``.

    Example:
      >>> q = fs.Orthogonal().apply(torch.randn(4, 4))
      >>> torch.allclose(q.mT @ q, torch.eye(4), atol=1e-5)
      True
      >>> q = fs.Orthogonal().apply(-torch.eye(3))
      >>> round(float(torch.linalg.det(q)), 4)
      -1.0
      >>> frame = fs.Orthogonal(method="householder").apply(torch.randn(5, 2))
      >>> torch.allclose(frame.mT @ frame, torch.eye(2), atol=1e-5)
      True
    """

    method: str = "cayley"

    dtypes = LINALG_DTYPES

    def __post_init__(self) -> None:
        check_choice(self, "method", self.method, _METHODS)

    def value_shape(self, raw_shape: RawShape) -> torch.Size:
        """Square or tall (rows >= columns); square only for ``method="expm"``."""
        return frame_shape(raw_shape, self.method)

    def _apply(self, raw: Tensor) -> Tensor:
        return ORTHOGONAL_CHARTS[self.method].forward(raw)

    def _inverse(self, value: Tensor) -> Tensor:
        return ORTHOGONAL_CHARTS[self.method].inverse(value)

    def _contains(self, value: Tensor, atol: float, rtol: float) -> Tensor:
        return close(value.mT @ value, eye_like(value), atol, rtol)

    def _project(self, value: Tensor) -> Tensor:
        return polar_factor(value)

    def _operator(self, raw: Tensor) -> ops.Operator:
        value = self._apply(raw)
        if value.shape[-1] != value.shape[-2]:
            return ops.Dense(value)
        # The chart's determinant: -1 exactly where raw[0, 0] < 0 (see ORTHOGONAL_CHARTS).
        sign = torch.where(raw[..., 0, 0] < 0, -1.0, 1.0).to(value.dtype)
        return ops.Orthogonal(value, sign)

    def _init(self, shape, generator, dtype, device) -> Tensor:
        chart = ORTHOGONAL_CHARTS[self.method]
        return haar_raw(chart.inverse, shape, generator, dtype, device, chart.init_rounds)

    # --------------------------------------------------------- capability "manifold"
    def _tangent(self, value: Tensor, vector: Tensor) -> Tensor:
        return vector - value @ sym(value.mT @ vector)

    def _retract(self, value: Tensor, step: Tensor) -> Tensor:
        return qr_frame(value + step)

    _no_log_det = (
        "the orthogonal group has two components, which no bijection from a vector "
        "space reaches (and the raw diagonal is unused); for rotations use "
        "SpecialOrthogonal(packed=True), the Cayley map with a closed-form log-det"
    )


@dataclasses.dataclass(frozen=True)
class SpecialOrthogonal(PackedTriangle):
    """Rotations: square orthogonal matrices with determinant +1.

    The Cayley map of ``Orthogonal`` without its sign: the whole raw diagonal is unused, and
    the same limits hold (rotations with an eigenvalue -1, such as ``-I`` for even n, are out
    of reach; ``inverse`` gives NaN there). ``init`` is Haar on the rotation group (raw entries
    at most 100, as for ``Orthogonal``); ``project`` is the nearest rotation,
    ``U diag(1, ..., 1, det(U Vᵀ)) Vᵀ``.

    ``packed=True`` takes the ``n(n-1)/2`` entries below the diagonal alone: a bijection onto
    the rotations without an eigenvalue -1 (all but a set of measure zero). Its
    ``forward_and_log_det`` measures volume in the coordinates ``Qᵀ dQ`` below the diagonal
    (the Haar measure with the metric ``‖Qᵀ dQ‖²_F / 2``): ``Qᵀ dQ = 2 (I + A)⁻¹ dA (I - A)⁻¹``
    for the skew ``A``, so ``log|det J| = n(n-1)/2 · log 2 - (n - 1) log det(I - A)``, from the
    one LU factorization of ``I - A`` that also gives ``Q``.

    Args:
      packed: the raw is the strict lower triangle, row by row (``n(n-1)/2`` entries).

    Example:
      >>> q = fs.SpecialOrthogonal().apply(torch.randn(3, 3))
      >>> round(float(torch.linalg.det(q)), 4)
      1.0
    """

    packed: bool = False

    dtypes = LINALG_DTYPES
    _strict = True

    def __post_init__(self) -> None:
        check_bool(self, "packed", self.packed)

    def _apply(self, raw: Tensor) -> Tensor:
        return ROTATION_CHARTS["cayley"].forward(self._full_raw(raw))

    def _forward_and_log_det(self, raw: Tensor) -> tuple[Tensor, Tensor]:
        lower = torch.tril(self._full_raw(raw), -1)
        eye = eye_like(lower)
        factor = ops.LU(eye - lower + lower.mT)
        q = 2 * factor.inv() - eye
        n = q.shape[-1]
        log_det = n * (n - 1) / 2 * math.log(2) - (n - 1) * factor.slogdet()[1]
        return q, log_det

    def _log_det_coordinates(self, value: Tensor, tangent: Tensor) -> Tensor:
        return pack_lower(value.mT @ tangent, strict=True)

    def _inverse(self, value: Tensor) -> Tensor:
        return self._packed_raw(ROTATION_CHARTS["cayley"].inverse(value))

    def _contains(self, value: Tensor, atol: float, rtol: float) -> Tensor:
        orthogonal = close(value.mT @ value, eye_like(value), atol, rtol)
        return orthogonal & (torch.linalg.det(value) > 0)

    def _project(self, value: Tensor) -> Tensor:
        u, _, vh = _guards.svd(value)
        return flip_smallest_where_reflection(u, vh) @ vh

    def _operator(self, raw: Tensor) -> ops.Operator:
        value = self._apply(raw)
        return ops.Orthogonal(value, torch.ones_like(value[..., 0, 0]))

    def _tangent(self, value: Tensor, vector: Tensor) -> Tensor:
        return vector - value @ sym(value.mT @ vector)

    def _retract(self, value: Tensor, step: Tensor) -> Tensor:
        q = qr_frame(value + step)  # det +1 for steps that keep det(value + step) > 0
        return flip_first_column(q, (torch.linalg.det(q) < 0)[..., None, None])

    def _init(self, shape, generator, dtype, device) -> Tensor:
        chart = ROTATION_CHARTS["cayley"]
        raw = haar_raw(chart.inverse, shape, generator, dtype, device, rotations=True)
        return self._packed_raw(raw)
