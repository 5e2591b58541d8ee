"""Unitary matrices, complex orthonormal frames (the complex Stiefel manifold) and SU(n)."""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from ._charts import UNITARY_CHARTS, log_special_unitary, special_unitary
from ._kernels import (
    eye_like,
    haar_orthogonal,
    haar_raw,
    polar_factor,
    qr_frame,
    sym,
)
from ._orthogonal import frame_shape
from ._rawform import RawShape
from ._structure import COMPLEX_DTYPES, AbstractStructure, close
from ._validate import check_choice

__all__ = ["SpecialUnitary", "Unitary"]

_METHODS = tuple(UNITARY_CHARTS)


def _unit_determinant(q: Tensor) -> Tensor:
    """``q`` times ``det(q)^(-1/n)`` (the principal root): determinant 1 for a unitary ``q``."""
    det = torch.linalg.det(q)
    n = q.shape[-1]
    return q * torch.polar(torch.ones_like(det.real), -torch.angle(det) / n)[..., None, None]


@dataclasses.dataclass(frozen=True)
class Unitary(AbstractStructure):
    """Complex matrices with orthonormal columns, ``QᴴQ = I``: square (unitary) or tall.

    The complex counterpart of ``Orthogonal``; raw and value are complex64 or complex128.
    ``A`` is the skew-Hermitian matrix of the raw's strict lower triangle and the imaginary
    parts of its diagonal (``A = T - Tᴴ``, ``T`` the lower triangle: diagonal ``2i Im raw_kk``);
    the real parts of the diagonal are unused. The unitary group is connected, so no sign
    trick is needed (every determinant is reached). Three maps, as for ``Orthogonal``:

    - ``"cayley"`` (default): ``2 (I - A)⁻¹ - I`` (first columns for tall raw, ``A`` from
      the zero-padded raw). Unitaries with an eigenvalue -1 are out of reach (NaN inverse).
    - ``"expm"`` (square only): ``exp(A)``; ``inverse`` is the principal logarithm.
    - ``"householder"``: ``-H₁ ⋯ H_k Φ``, reflections along the raw columns below the diagonal
      (unit in the diagonal slot) and column phases ``Φ = diag(exp(i Im raw_jj))``; reaches
      every unitary.

    ``init`` is Haar-distributed (conditioned on raw entries of at most 100, as for
    ``Orthogonal``); ``project`` is the polar factor ``U Vᴴ``. As a manifold: the real
    part of the Frobenius inner product, tangent projection ``V - X sym(XᴴV)`` (``sym`` the
    Hermitian part), the QR retraction ``qf(X + V)`` with a positive real ``diag(R)``.

    Args:
      method: ``"cayley"``, ``"expm"`` or ``"householder"``.

    Example:
      >>> q = fs.Unitary().apply(torch.randn(3, 3, dtype=torch.complex128))
      >>> torch.allclose(q.mH @ q, torch.eye(3, dtype=torch.complex128))
      True
      >>> fs.Unitary().init((2, 2)).dtype  # complex counterpart of the default dtype
      torch.complex64
    """

    method: str = "cayley"

    dtypes = COMPLEX_DTYPES

    def __post_init__(self) -> None:
        check_choice(self, "method", self.method, _METHODS)

    def value_shape(self, raw_shape: RawShape) -> torch.Size:
        """Square or tall (rows >= columns); square only for ``method="expm"``."""
        return frame_shape(raw_shape, self.method)

    def _apply(self, raw: Tensor) -> Tensor:
        return UNITARY_CHARTS[self.method].forward(raw)

    def _inverse(self, value: Tensor) -> Tensor:
        return UNITARY_CHARTS[self.method].inverse(value)

    def _contains(self, value: Tensor, atol: float, rtol: float) -> Tensor:
        return close(value.mH @ value, eye_like(value), atol, rtol)

    def _project(self, value: Tensor) -> Tensor:
        return polar_factor(value)

    def _init(self, shape, generator, dtype, device) -> Tensor:
        chart = UNITARY_CHARTS[self.method]
        return haar_raw(chart.inverse, shape, generator, dtype, device, chart.init_rounds)

    # --------------------------------------------------------- capability "manifold"
    def _tangent(self, value: Tensor, vector: Tensor) -> Tensor:
        return vector - value @ sym(value.mH @ vector)

    def _retract(self, value: Tensor, step: Tensor) -> Tensor:
        return qr_frame(value + step)

    _no_log_det = (
        "its complex raw carries the unused real parts of the diagonal, so apply is not a "
        "bijection of the raw's real coordinates"
    )


@dataclasses.dataclass(frozen=True)
class SpecialUnitary(AbstractStructure):
    """Unitary matrices with determinant 1, ``SU(n)``.

    ``exp(A - tr(A)/n I)`` with ``A`` skew-Hermitian from the complex square raw, as for
    ``Unitary(method="expm")``: every member is reached (``inverse`` is a traceless
    logarithm from the eigenvalues), and the raw range is that of the exponential (the
    catalog's ``max_magnitude``). ``init`` is Haar on ``SU(n)``. ``project`` is the polar
    factor turned by ``det^(-1/n)`` (principal root): the nearest member for unitary input, a
    near one otherwise. As a manifold: tangent vectors ``X Ω``, ``Ω`` skew-Hermitian and
    traceless; the
    QR retraction turned back to determinant 1.

    Example:
      >>> q = fs.SpecialUnitary().apply(torch.randn(3, 3, dtype=torch.complex128))
      >>> torch.linalg.det(q).real.round(decimals=9).item()
      1.0
    """

    dtypes = COMPLEX_DTYPES
    square = True

    def _apply(self, raw: Tensor) -> Tensor:
        return special_unitary(raw)

    def _inverse(self, value: Tensor) -> Tensor:
        return log_special_unitary(value)

    def _contains(self, value: Tensor, atol: float, rtol: float) -> Tensor:
        unitary = close(value.mH @ value, eye_like(value), atol, rtol)
        one = torch.ones_like(value[..., :1, :1])
        return unitary & close(torch.linalg.det(value)[..., None, None], one, atol, rtol)

    def _project(self, value: Tensor) -> Tensor:
        return _unit_determinant(polar_factor(value))

    def _init(self, shape, generator, dtype, device) -> Tensor:
        q = haar_orthogonal(shape, generator, dtype, device)
        return log_special_unitary(_unit_determinant(q))

    # --------------------------------------------------------- capability "manifold"
    def _tangent(self, value: Tensor, vector: Tensor) -> Tensor:
        omega = value.mH @ vector
        omega = (omega - omega.mH) / 2
        trace = omega.diagonal(dim1=-2, dim2=-1).mean(-1)
        return value @ (omega - trace[..., None, None] * eye_like(omega))

    def _retract(self, value: Tensor, step: Tensor) -> Tensor:
        return _unit_determinant(qr_frame(value + step))

    _no_log_det = (
        "its complex raw carries unused real coordinates (the diagonal's real parts and the "
        "determinant's phase), so apply is not a bijection"
    )
