"""The registry of built-in structures with the options and ranges they are tested over.

Every structure in the library has at least one entry here; the contract tests, the public
``fs.testing.catalog()`` strategy and the README table are all driven by this list.
"""

from __future__ import annotations

import dataclasses

from ._combinators import Chain, Frozen, Sum
from ._definite import CholeskyFactor, Correlation, PositiveDefinite, PositiveSemidefinite
from ._elementwise import Bounded, Positive
from ._hermitian import DensityMatrix, Hermitian, HermitianPositiveDefinite, SkewHermitian
from ._kronecker import Kronecker
from ._normalized import DoublyStochastic, Simplex, UnitNorm
from ._orthogonal import Orthogonal, SpecialOrthogonal
from ._rank import BoundedSpectralNorm, FixedRank, Invertible, LowRank, SpecialLinear
from ._structure import AbstractStructure
from ._subspaces import Circulant, Hankel, SkewSymmetric, Symmetric, Toeplitz
from ._triangular import (
    Banded,
    BlockDiagonal,
    Diagonal,
    LowerTriangular,
    Masked,
    UpperTriangular,
)
from ._unitary import SpecialUnitary, Unitary

__all__ = ["CATALOG", "CatalogEntry"]


@dataclasses.dataclass(frozen=True)
class CatalogEntry:
    """A structure with the core shapes and raw magnitudes it is documented to handle.

    Attributes:
      structure: the structure, with its options.
      core_shapes: structured core shapes to test (the trailing dims; for elementwise
        structures, whose core is empty, these are batch shapes).
      max_magnitude: the largest raw entry for which law 1 (membership) is promised in
        float32; float64 is promised at least as far.
      differentiable: False for structures that block gradients on purpose (``Frozen``),
        which law 4 would otherwise flag.
      tolerance: for structures whose members are approximate by design (Sinkhorn), the
        relative error laws 2 allow for round trips and projections; None for the default.
      finite_magnitude: the largest raw entry for which values and gradients are promised
        finite (the exponential-based maps overflow beyond theirs).
    """

    structure: AbstractStructure
    core_shapes: tuple[tuple[int, ...], ...] = ((4, 4), (3, 5), (5, 3))
    max_magnitude: float = 1e4
    differentiable: bool = True
    tolerance: float | None = None
    finite_magnitude: float = 1e4

    @property
    def id(self) -> str:
        """A short, readable test id."""
        return repr(self.structure)


_SQUARE = ((1, 1), (3, 3), (5, 5))
_VECTORS = ((3,), (2, 4))
_ELEMENTS = ((3,), (2, 3))
_TALL = ((4, 2), (5, 1))

CATALOG: tuple[CatalogEntry, ...] = (
    # masks
    CatalogEntry(UpperTriangular()),
    CatalogEntry(UpperTriangular(diagonal=1)),
    CatalogEntry(UpperTriangular(packed=True), _SQUARE),
    CatalogEntry(LowerTriangular()),
    CatalogEntry(LowerTriangular(diagonal=-1, packed=True), _SQUARE),
    CatalogEntry(Diagonal()),
    CatalogEntry(Diagonal(packed=True), _SQUARE),
    CatalogEntry(Banded(1, 1)),
    CatalogEntry(Banded(0, 2, packed=True), _SQUARE),
    CatalogEntry(BlockDiagonal((1, 2)), ((3, 3),)),
    CatalogEntry(Masked(((True, False, True), (False, True, True))), ((2, 3),)),
    # linear subspaces
    CatalogEntry(Symmetric(), _SQUARE),
    CatalogEntry(Symmetric(packed=True), _SQUARE),
    CatalogEntry(SkewSymmetric(), _SQUARE),
    CatalogEntry(SkewSymmetric(packed=True), _SQUARE),
    CatalogEntry(Toeplitz()),
    CatalogEntry(Toeplitz(packed=True), _SQUARE),
    CatalogEntry(Hankel()),
    CatalogEntry(Hankel(packed=True), _SQUARE),
    CatalogEntry(Circulant(), _SQUARE),
    CatalogEntry(Circulant(packed=True), _SQUARE),
    # elementwise and vector sets
    CatalogEntry(Positive(), _ELEMENTS),
    CatalogEntry(Positive(min=1.0), _ELEMENTS),
    CatalogEntry(Bounded(-1.0, 2.0), _ELEMENTS),
    CatalogEntry(Simplex(), _VECTORS),
    CatalogEntry(Simplex(dim=-2), ((3, 4),)),
    CatalogEntry(Simplex(packed=True), ((1,), *_VECTORS)),
    CatalogEntry(Simplex(dim=-2, packed=True), ((3, 4),)),
    CatalogEntry(UnitNorm(), _VECTORS),
    CatalogEntry(UnitNorm(dim=-2), ((3, 4),)),
    # Rank-one logits are Sinkhorn's slowest case: at scale 1, 2 in 1000 of them (3 x 3) end
    # with a row off by more than the tolerance after 50 steps; at 0.5, 1 in 10^5.
    CatalogEntry(DoublyStochastic(), ((1, 1), (3, 3), (4, 4)), max_magnitude=0.5, tolerance=1e-3),
    # matrix manifolds
    CatalogEntry(PositiveDefinite(), _SQUARE),
    CatalogEntry(PositiveDefinite(method="expm"), _SQUARE, max_magnitude=5.0, finite_magnitude=5.0),
    CatalogEntry(PositiveDefinite(packed=True), _SQUARE),
    CatalogEntry(
        PositiveDefinite(method="expm", packed=True),
        _SQUARE,
        max_magnitude=5.0,
        finite_magnitude=5.0,
    ),
    CatalogEntry(PositiveSemidefinite(), _SQUARE),
    CatalogEntry(PositiveSemidefinite(rank=2), ((2, 2), (3, 3), (5, 5))),
    CatalogEntry(Orthogonal(), _SQUARE + _TALL, max_magnitude=100.0),
    CatalogEntry(Orthogonal(method="expm"), _SQUARE, max_magnitude=30.0, finite_magnitude=100.0),
    CatalogEntry(Orthogonal(method="householder"), _SQUARE + _TALL, max_magnitude=100.0),
    CatalogEntry(SpecialOrthogonal(), _SQUARE, max_magnitude=100.0),
    CatalogEntry(SpecialOrthogonal(packed=True), _SQUARE, max_magnitude=100.0),
    CatalogEntry(CholeskyFactor(), _SQUARE),
    CatalogEntry(CholeskyFactor(packed=True), _SQUARE),
    CatalogEntry(Correlation(), _SQUARE),
    CatalogEntry(Correlation(packed=True), _SQUARE),
    # rank and norm bounds
    CatalogEntry(LowRank(2), ((2, 2), (4, 3), (3, 5))),
    CatalogEntry(FixedRank(2), ((2, 2), (4, 3), (3, 5)), max_magnitude=100.0),
    CatalogEntry(Invertible(), _SQUARE, max_magnitude=100.0),
    CatalogEntry(SpecialLinear(), _SQUARE, max_magnitude=0.3, finite_magnitude=10.0),
    CatalogEntry(BoundedSpectralNorm(), _SQUARE + ((3, 5), (5, 3))),
    CatalogEntry(BoundedSpectralNorm(max_norm=3.0)),
    # combinators
    CatalogEntry(Chain(Positive(), Diagonal())),
    CatalogEntry(Chain(Positive(), Diagonal(packed=True)), _SQUARE),
    CatalogEntry(Chain(Diagonal(), Positive())),
    CatalogEntry(Chain(Bounded(-1.0, 2.0), Toeplitz())),
    CatalogEntry(Sum(LowerTriangular(), UpperTriangular(diagonal=1))),
    CatalogEntry(Sum(Symmetric(), SkewSymmetric()), _SQUARE),
    CatalogEntry(Sum(Circulant(), UpperTriangular()), _SQUARE),
    # LoRA: a frozen weight plus a trainable low-rank update; its gradient skips the frozen part.
    CatalogEntry(Sum(Frozen(), LowRank(1)), ((4, 4), (3, 5)), differentiable=False),
    CatalogEntry(Frozen(), _ELEMENTS, differentiable=False),
    # complex sets (complex64 and complex128 raw and values)
    CatalogEntry(Unitary(), _SQUARE + _TALL, max_magnitude=100.0),
    CatalogEntry(Unitary(method="expm"), _SQUARE, max_magnitude=30.0, finite_magnitude=100.0),
    CatalogEntry(Unitary(method="householder"), _SQUARE + _TALL, max_magnitude=100.0),
    CatalogEntry(SpecialUnitary(), _SQUARE, max_magnitude=30.0, finite_magnitude=100.0),
    CatalogEntry(Hermitian(), _SQUARE),
    CatalogEntry(Hermitian(packed=True), _SQUARE),
    CatalogEntry(SkewHermitian(), _SQUARE),
    CatalogEntry(SkewHermitian(packed=True), _SQUARE),
    CatalogEntry(HermitianPositiveDefinite(), _SQUARE),
    CatalogEntry(HermitianPositiveDefinite(packed=True), _SQUARE),
    CatalogEntry(DensityMatrix(), _SQUARE),
    CatalogEntry(DensityMatrix(rank=1), _SQUARE),
    CatalogEntry(DensityMatrix(rank=2), ((2, 2), (3, 3), (5, 5))),
    # separable products, factor by factor
    CatalogEntry(Kronecker(PositiveDefinite(), PositiveDefinite(), sizes=(2, 3)), ((6, 6),)),
    CatalogEntry(Kronecker(Diagonal(), LowRank(1), Symmetric(), sizes=(2, (3, 2), 2)), ((12, 8),)),
)
