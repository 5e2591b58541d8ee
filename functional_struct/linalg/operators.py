"""The operator types a structure's ``_operator`` hook may return (the ``"linalg"`` capability).

A custom structure gets structured rules by returning one of these from ``_operator(raw)``:
for example ``Diagonal(d)`` for a diagonal member, ``LowRank(U, V)`` for ``U Vᵀ``, or
``Sum([...])`` of them (a diagonal plus low-rank terms is then solved by Woodbury).
"""

from ._fourier import Circulant as Circulant
from ._fourier import Hankel as Hankel
from ._fourier import Toeplitz as Toeplitz
from ._kronecker import Kronecker as Kronecker
from ._lowrank import LowRank as LowRank
from ._lowrank import Sum as Sum
from ._operators import LU as LU
from ._operators import Banded as Banded
from ._operators import BlockDiagonal as BlockDiagonal
from ._operators import Columns as Columns
from ._operators import Dense as Dense
from ._operators import Diagonal as Diagonal
from ._operators import Factor as Factor
from ._operators import Operator as Operator
from ._operators import Orthogonal as Orthogonal
from ._operators import PositiveDefinite as PositiveDefinite
from ._operators import Triangular as Triangular

__all__ = [
    "Banded",
    "BlockDiagonal",
    "Circulant",
    "Columns",
    "Dense",
    "Diagonal",
    "Factor",
    "Hankel",
    "Kronecker",
    "LU",
    "LowRank",
    "Operator",
    "Orthogonal",
    "PositiveDefinite",
    "Sum",
    "Toeplitz",
    "Triangular",
]
