"""functional_struct: pure, composable structure maps for torch.func.

A structure maps a raw, unconstrained tensor to a member of its set (triangular,
positive-definite, orthogonal, ...); ``fs.structure(spec)`` does the same for a whole parameter
pytree. Everything is a pure function of tensors, so it composes with ``functional_call``,
``grad``, ``vmap``, ``jacfwd`` and ``torch.compile``.
"""

from ._definite import PositiveDefinite as PositiveDefinite
from ._orthogonal import Orthogonal as Orthogonal
from ._structure import AbstractStructure as AbstractStructure
from ._structure import default_tolerances as default_tolerances
from ._tree import StructureTree as StructureTree
from ._tree import structure as structure
from ._triangular import Diagonal as Diagonal
from ._triangular import LowerTriangular as LowerTriangular
from ._triangular import UpperTriangular as UpperTriangular

__version__ = "0.1.0"

__all__ = [
    "AbstractStructure",
    "Diagonal",
    "LowerTriangular",
    "Orthogonal",
    "PositiveDefinite",
    "StructureTree",
    "UpperTriangular",
    "default_tolerances",
    "structure",
]
