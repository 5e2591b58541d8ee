"""Complex self-adjoint sets: Hermitian, skew-Hermitian, Hermitian positive-definite, density.

Raw and value are complex64 or complex128. A complex raw entry carries two real numbers, and
the diagonal of a Hermitian matrix only one: the unused half (the imaginary parts of a
Hermitian diagonal, the real parts of a skew-Hermitian one) is why none of these maps is a
bijection of the raw's real coordinates, and why none has the ``"log_det"`` capability.
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import Tensor

from . import _guards
from ._definite import PositiveDefinite
from ._kernels import abs_squared, eigen_reconstruct, simplex_projection
from ._linear import CONJUGATE, IMAGINARY, REAL, AbstractLinear, Pattern
from ._rawform import RawShape, one_tensor
from ._structure import COMPLEX_DTYPES, AbstractStructure, close
from ._validate import check_choice, check_int

__all__ = ["DensityMatrix", "Hermitian", "HermitianPositiveDefinite", "SkewHermitian"]

_UNUSED_HALF = (
    "a complex raw carries two real numbers per diagonal entry where the set has one, so "
    "apply is not a bijection of the raw's real coordinates"
)


def _lower_pattern(n: int, device: torch.device, skew: bool) -> Pattern:
    """The lower triangle (row by row) as coordinates; above it the conjugate (negated if skew)."""
    rows = torch.arange(n, device=device).unsqueeze(-1).expand(n, n)
    cols = torch.arange(n, device=device).expand(n, n)
    high, low = torch.maximum(rows, cols), torch.minimum(rows, cols)
    index = (high * (high + 1) // 2 + low).flatten()
    on = rows == cols
    part = torch.where(on, IMAGINARY if skew else REAL, torch.where(rows > cols, 0, CONJUGATE))
    sign = torch.where(rows < cols, -1, 1).flatten() if skew else None
    return Pattern(index, sign, n * (n + 1) // 2, part.flatten())


class _AbstractSelfAdjoint(AbstractLinear):
    """Hermitian (``_skew`` False) or skew-Hermitian matrices: a real-linear subspace."""

    packed: bool
    square = True
    dtypes = COMPLEX_DTYPES
    _size_formula = "n(n+1)/2"
    _skew = False

    def _size(self, n: int) -> int:
        return n * (n + 1) // 2

    def _pattern(self, m: int, n: int, device: torch.device) -> Pattern:
        return _lower_pattern(n, device, self._skew)

    def _project_full(self, value: Tensor) -> Tensor:
        return (value - value.mH) / 2 if self._skew else (value + value.mH) / 2

    def _refusal(self, name: str) -> str | None:
        return _UNUSED_HALF if name == "log_det" else super()._refusal(name)


@dataclasses.dataclass(frozen=True)
class Hermitian(_AbstractSelfAdjoint):
    """Square Hermitian matrices, ``A = Aᴴ`` (a real diagonal); complex raw and value.

    ``apply`` of a full raw is the Hermitian part ``(R + Rᴴ) / 2``, the orthogonal projection
    (for the real inner product ``Re tr(AᴴB)``), as ``Symmetric`` for real matrices.

    Args:
      packed: raw is the lower triangle, row by row (``n(n+1)/2`` complex entries; the
        imaginary parts of the diagonal entries are unused).

    Example:
      >>> fs.Hermitian(packed=True).apply(torch.tensor([1.0 + 5j, 2.0 - 1j, 3.0]))
      tensor([[1.+0.j, 2.+1.j],
              [2.-1.j, 3.+0.j]])
    """

    packed: bool = False


@dataclasses.dataclass(frozen=True)
class SkewHermitian(_AbstractSelfAdjoint):
    """Square skew-Hermitian matrices, ``A = -Aᴴ`` (an imaginary diagonal); complex raw and value.

    The Lie algebra of the unitary group (``exp`` of a member is unitary). ``apply`` of a full
    raw is the skew-Hermitian part ``(R - Rᴴ) / 2``.

    Args:
      packed: raw is the lower triangle, row by row (``n(n+1)/2`` complex entries; the real
        parts of the diagonal entries are unused).

    Example:
      >>> a = fs.SkewHermitian(packed=True).apply(torch.tensor([5.0 + 1j, 2.0, 3.0 - 2j]))
      >>> torch.equal(a, -a.mH), a.diagonal().imag
      (True, tensor([ 1., -2.]))
    """

    packed: bool = False
    _skew = True


@dataclasses.dataclass(frozen=True)
class HermitianPositiveDefinite(PositiveDefinite):
    """Hermitian positive-definite matrices with an eigenvalue floor: ``PositiveDefinite`` in ℂ.

    ``L`` is the complex lower raw triangle with the real diagonal ``softplus(Re raw_ii)``
    (the imaginary parts of the raw diagonal are unused) and ``A = L Lᴴ + t I`` with
    ``t = floor + relative_floor * ‖L‖²_F / n``: the same floor, and the same guarantee, as
    ``PositiveDefinite``'s Cholesky method (every eigenvalue at least ``floor`` and
    ``relative_floor`` times the base's mean; ``inverse`` a Cholesky factorization of
    ``A - t I``). Only ``method="cholesky"``. ``packed=True`` takes the lower triangle
    alone. As a manifold: the affine-invariant metric, as ``PositiveDefinite``, with
    Hermitian tangent vectors.

    Args:
      floor: absolute eigenvalue floor, > 0.
      relative_floor: eigenvalue floor relative to the mean eigenvalue of the base, >= 0.
      method: ``"cholesky"``.
      packed: the raw is the lower triangle, row by row (``n(n+1)/2`` complex entries).

    Example:
      >>> a = fs.HermitianPositiveDefinite().apply(torch.randn(3, 3, dtype=torch.complex128))
      >>> bool(torch.linalg.cholesky_ex(a).info == 0), torch.allclose(a, a.mH)
      (True, True)
    """

    dtypes = COMPLEX_DTYPES

    def __post_init__(self) -> None:
        check_choice(self, "method", self.method, ("cholesky",))
        super().__post_init__()

    def _refusal(self, name: str) -> str | None:
        return _UNUSED_HALF if name == "log_det" else super()._refusal(name)


@dataclasses.dataclass(frozen=True)
class DensityMatrix(AbstractStructure):
    """Density matrices: Hermitian, positive semidefinite, trace 1; optionally rank <= r.

    The raw is a complex ``n x r`` factor ``F`` (``r = n`` when ``rank`` is None) and
    ``apply`` is ``F Fᴴ / ‖F‖²_F`` (a raw of zeros gives ``E Eᴴ / r``, ``E`` the first ``r``
    columns of the identity: the maximally mixed state ``I / n`` without a rank).
    ``inverse`` is ``V_r Λ_r^(1/2)`` from the eigendecomposition (the ``r`` largest
    eigenvalues); ``project`` is the nearest density matrix of rank <= r in the Frobenius
    norm: the Hermitian part's eigenvalues, the ``r`` largest projected onto the probability
    simplex. ``init`` draws a complex Gaussian factor (the induced measure: Hilbert-Schmidt
    for ``r = n``).

    Args:
      rank: the largest rank, or None for any (mixed states); 1 gives pure states.

    Example:
      >>> rho = fs.DensityMatrix().apply(torch.randn(4, 4, dtype=torch.complex128))
      >>> round(float(rho.diagonal().real.sum()), 6), bool(torch.linalg.eigvalsh(rho).min() > 0)
      (1.0, True)
      >>> pure = fs.DensityMatrix(rank=1).apply(torch.randn(4, 1, dtype=torch.complex128))
      >>> torch.allclose(pure @ pure, pure)
      True
    """

    rank: int | None = None

    dtypes = COMPLEX_DTYPES
    square = True

    def __post_init__(self) -> None:
        if self.rank is not None:
            check_int(self, "rank", self.rank, minimum=1)

    def raw_shape(self, shape: tuple[int, ...]) -> RawShape:
        """The ``n x r`` factor of an ``n x n`` density matrix (``r = n`` without a rank)."""
        if shape[-1] != shape[-2]:
            raise ValueError("needs a square matrix in its last two dims")
        return torch.Size([shape[-1], shape[-1] if self.rank is None else self.rank])

    def value_shape(self, raw_shape: RawShape) -> torch.Size:
        """``n x n`` for an ``n x r`` raw factor (``r`` the rank, or ``n``)."""
        n, r = one_tensor(raw_shape, 2)
        want = n if self.rank is None else self.rank
        if r != want:
            raise ValueError(f"needs a raw factor with {want} columns (n x {want})")
        if self.rank is not None and self.rank > n:
            raise ValueError(f"is of rank at most {self.rank}, more than the matrix size {n}")
        return torch.Size([n, n])

    def _apply(self, raw: Tensor) -> Tensor:
        # The map ignores the raw's scale: dividing by a detached one keeps values and
        # derivatives, and keeps ‖F‖² from overflowing.
        size = raw.detach().abs().amax((-2, -1), keepdim=True)
        raw = raw / torch.where((size > 0) & torch.isfinite(size), size, 1.0)
        norm = abs_squared(raw).sum((-2, -1), keepdim=True)
        zero = norm == 0  # NaN and Inf raws stay non-finite
        gram = raw @ raw.mH / torch.where(zero, 1.0, norm)
        n, r = raw.shape[-2:]
        mixed = torch.diag_embed((torch.arange(n, device=raw.device) < r).to(raw.dtype) / r)
        return torch.where(zero, mixed, gram)

    def _spectrum(self, value: Tensor) -> tuple[Tensor, Tensor]:
        """The ``r`` largest eigenvalues (ascending) of the Hermitian part, and their vectors."""
        values, vectors = _guards.eigh(value)
        r = value.shape[-1] if self.rank is None else self.rank
        return values[..., -r:], vectors[..., -r:]

    def _inverse(self, value: Tensor) -> Tensor:
        values, vectors = self._spectrum(value)
        return vectors * values.clamp_min(0).sqrt().to(value.dtype).unsqueeze(-2)

    def _contains(self, value: Tensor, atol: float, rtol: float) -> Tensor:
        hermitian = close(value, value.mH, atol, rtol)
        values = _guards.eigvalsh(value)
        trace = value.real.diagonal(dim1=-2, dim2=-1).sum(-1)
        tol = atol + rtol * values.abs().amax(-1)
        n = value.shape[-1]
        outside = n - (n if self.rank is None else min(self.rank, n))
        small = values[..., :outside].abs().amax(-1) if outside else torch.zeros_like(tol)
        return (
            hermitian
            & ((trace - 1).abs() <= atol + rtol)
            & (values[..., 0] >= -tol)
            & (small <= tol)
        )

    def _project(self, value: Tensor) -> Tensor:
        values, vectors = self._spectrum(value)
        weights = simplex_projection(values)
        return eigen_reconstruct(vectors, weights.to(value.dtype))

    def _init(self, shape, generator, dtype, device) -> Tensor:
        batch, n = shape[:-2], shape[-1]
        factor = (n, n if self.rank is None else self.rank)
        noise = torch.randn((*batch, *factor), generator=generator, dtype=dtype, device=device)
        return noise / math.sqrt(n)

    _no_log_det = (
        "its raw factor F has a unitary gauge freedom (F U gives the same state), so apply "
        "is not a bijection"
    )
