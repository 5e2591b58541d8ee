"""The registry of built-in structures with the options and ranges they are tested over.

Every structure in the library has at least one entry here; the contract tests, the public
``fs.testing.catalog()`` strategy and the README table are all driven by this list.
"""

from __future__ import annotations

import dataclasses

from ._definite import PositiveDefinite
from ._orthogonal import Orthogonal
from ._structure import AbstractStructure
from ._triangular import Diagonal, LowerTriangular, UpperTriangular

__all__ = ["CATALOG", "CatalogEntry"]


@dataclasses.dataclass(frozen=True)
class CatalogEntry:
    """A structure with the core shapes and raw magnitudes it is documented to handle.

    Attributes:
      structure: the structure, with its options.
      core_shapes: structured core shapes to test (the trailing dims).
      max_magnitude: the largest raw entry for which law 1 (membership) is promised in
        float32; float64 is promised at least as far.
    """

    structure: AbstractStructure
    core_shapes: tuple[tuple[int, ...], ...] = ((4, 4), (3, 5), (5, 3))
    max_magnitude: float = 1e4

    @property
    def id(self) -> str:
        """A short, readable test id."""
        return repr(self.structure)


_SQUARE = ((1, 1), (3, 3), (5, 5))

CATALOG: tuple[CatalogEntry, ...] = (
    CatalogEntry(UpperTriangular()),
    CatalogEntry(UpperTriangular(diagonal=1)),
    CatalogEntry(LowerTriangular()),
    CatalogEntry(LowerTriangular(diagonal=-1)),
    CatalogEntry(Diagonal()),
    CatalogEntry(PositiveDefinite(), _SQUARE),
    CatalogEntry(Orthogonal(), _SQUARE, max_magnitude=100.0),
)
