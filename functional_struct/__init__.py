"""functional_struct: pure, composable structure maps for torch.func.

A structure maps a raw, unconstrained tensor to a member of its set (triangular,
positive-definite, orthogonal, ...); ``fs.structure(spec)`` does the same for a whole parameter
pytree. Everything is a pure function of tensors, so it composes with ``functional_call``,
``grad``, ``vmap``, ``jacfwd`` and ``torch.compile``.
"""

from . import linalg as linalg
from . import optim as optim
from ._combinators import Chain as Chain
from ._combinators import Frozen as Frozen
from ._combinators import Sum as Sum
from ._definite import CholeskyFactor as CholeskyFactor
from ._definite import Correlation as Correlation
from ._definite import PositiveDefinite as PositiveDefinite
from ._definite import PositiveSemidefinite as PositiveSemidefinite
from ._distributions import StructureConstraint as StructureConstraint
from ._distributions import StructureTransform as StructureTransform
from ._distributions import as_transform as as_transform
from ._distributions import constraint as constraint
from ._distributions import register_transforms as register_transforms
from ._elementwise import Bounded as Bounded
from ._elementwise import Positive as Positive
from ._hermitian import DensityMatrix as DensityMatrix
from ._hermitian import Hermitian as Hermitian
from ._hermitian import HermitianPositiveDefinite as HermitianPositiveDefinite
from ._hermitian import SkewHermitian as SkewHermitian
from ._interop import StructureParametrization as StructureParametrization
from ._interop import as_parametrization as as_parametrization
from ._kronecker import Kronecker as Kronecker
from ._normalized import DoublyStochastic as DoublyStochastic
from ._normalized import Simplex as Simplex
from ._normalized import UnitNorm as UnitNorm
from ._orthogonal import Orthogonal as Orthogonal
from ._orthogonal import SpecialOrthogonal as SpecialOrthogonal
from ._rank import BoundedSpectralNorm as BoundedSpectralNorm
from ._rank import FixedRank as FixedRank
from ._rank import Invertible as Invertible
from ._rank import LowRank as LowRank
from ._rank import SpecialLinear as SpecialLinear
from ._structure import CAPABILITIES as CAPABILITIES
from ._structure import AbstractStructure as AbstractStructure
from ._structure import NotSupported as NotSupported
from ._structure import default_tolerances as default_tolerances
from ._subspaces import Circulant as Circulant
from ._subspaces import Hankel as Hankel
from ._subspaces import SkewSymmetric as SkewSymmetric
from ._subspaces import Symmetric as Symmetric
from ._subspaces import Toeplitz as Toeplitz
from ._tree import StructureTree as StructureTree
from ._tree import structure as structure
from ._triangular import Banded as Banded
from ._triangular import BlockDiagonal as BlockDiagonal
from ._triangular import Diagonal as Diagonal
from ._triangular import LowerTriangular as LowerTriangular
from ._triangular import Masked as Masked
from ._triangular import UpperTriangular as UpperTriangular
from ._unitary import SpecialUnitary as SpecialUnitary
from ._unitary import Unitary as Unitary

__version__ = "0.2.0"

__all__ = [
    "AbstractStructure",
    "CAPABILITIES",
    "Banded",
    "BlockDiagonal",
    "Bounded",
    "BoundedSpectralNorm",
    "Chain",
    "CholeskyFactor",
    "Circulant",
    "Correlation",
    "DensityMatrix",
    "Diagonal",
    "DoublyStochastic",
    "FixedRank",
    "Frozen",
    "Hankel",
    "Hermitian",
    "HermitianPositiveDefinite",
    "Invertible",
    "Kronecker",
    "LowRank",
    "LowerTriangular",
    "Masked",
    "NotSupported",
    "Orthogonal",
    "Positive",
    "PositiveDefinite",
    "PositiveSemidefinite",
    "Simplex",
    "SkewHermitian",
    "SkewSymmetric",
    "SpecialLinear",
    "SpecialOrthogonal",
    "SpecialUnitary",
    "StructureConstraint",
    "StructureParametrization",
    "StructureTransform",
    "StructureTree",
    "Sum",
    "Symmetric",
    "Toeplitz",
    "UnitNorm",
    "Unitary",
    "UpperTriangular",
    "as_parametrization",
    "as_transform",
    "constraint",
    "default_tolerances",
    "linalg",
    "optim",
    "register_transforms",
    "structure",
]
