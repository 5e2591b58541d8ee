"""Structured linear algebra from the raw: ``fs.linalg``.

Every function takes a structure and its raw (so the factors the raw holds are used, never
recovered from the dense matrix) and mirrors a ``torch`` function on ``structure.apply(raw)``:
``matmul``, ``linear``, ``solve``, ``slogdet``, ``logdet``, ``inv_quad_logdet``, ``inv``,
``diagonal``, ``trace``, ``root`` and ``sample``. A structure without a cheaper rule falls back
to the dense matrix, so every function accepts every structure; ``method`` says which rule
runs. A tuple of structures with a tuple of raws stands for the sum of their members (a
diagonal plus low-rank terms is solved by Woodbury).
"""

from . import operators as operators
from ._functions import diagonal as diagonal
from ._functions import inv as inv
from ._functions import inv_quad_logdet as inv_quad_logdet
from ._functions import inverse as inverse
from ._functions import linear as linear
from ._functions import logdet as logdet
from ._functions import matmul as matmul
from ._functions import method as method
from ._functions import root as root
from ._functions import sample as sample
from ._functions import slogdet as slogdet
from ._functions import solve as solve
from ._functions import trace as trace

__all__ = [
    "diagonal",
    "inv",
    "inv_quad_logdet",
    "inverse",
    "linear",
    "logdet",
    "matmul",
    "method",
    "operators",
    "root",
    "sample",
    "slogdet",
    "solve",
    "trace",
]
