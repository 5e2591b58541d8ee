"""Linear subspaces: symmetric, skew-symmetric, Toeplitz, circulant and Hankel matrices.

``apply`` of a full raw matrix is the orthogonal projection onto the subspace (symmetrizing,
averaging along diagonals, ...), and ``project`` is the same map; with ``packed=True`` the raw
tensor holds the free coordinates only. See ``_linear.py`` for the shared machinery.
"""

from __future__ import annotations

import abc
import dataclasses

import torch
from torch import Tensor

from ._linear import AbstractLinear, Pattern
from .linalg import operators as ops

__all__ = ["Circulant", "Hankel", "SkewSymmetric", "Symmetric", "Toeplitz"]


def _rows_cols(m: int, n: int, device: torch.device) -> tuple[Tensor, Tensor]:
    rows = torch.arange(m, device=device).unsqueeze(-1).expand(m, n)
    cols = torch.arange(n, device=device).expand(m, n)
    return rows, cols


@dataclasses.dataclass(frozen=True)
class Symmetric(AbstractLinear):
    """Square symmetric matrices, ``A = Aᵀ``.

    Args:
      packed: raw is the lower triangle, row by row (``n(n+1)/2`` entries).

    Example:
      >>> fs.Symmetric().apply(torch.tensor([[1.0, 2.0], [0.0, 1.0]]))
      tensor([[1., 1.],
              [1., 1.]])
      >>> fs.Symmetric(packed=True).apply(torch.tensor([1.0, 2.0, 3.0]))
      tensor([[1., 2.],
              [2., 3.]])
    """

    packed: bool = False
    square = True
    _size_formula = "n(n+1)/2"

    def _size(self, n: int) -> int:
        return n * (n + 1) // 2

    def _pattern(self, m: int, n: int, device: torch.device) -> Pattern:
        rows, cols = _rows_cols(m, n, device)
        high, low = torch.maximum(rows, cols), torch.minimum(rows, cols)
        return Pattern((high * (high + 1) // 2 + low).flatten(), None, self._size(n))

    def _project_full(self, value: Tensor) -> Tensor:
        return (value + value.mT) / 2


@dataclasses.dataclass(frozen=True)
class SkewSymmetric(AbstractLinear):
    """Square skew-symmetric matrices, ``A = -Aᵀ`` (so the diagonal is zero).

    Args:
      packed: raw is the strict lower triangle, row by row (``n(n-1)/2`` entries).

    Example:
      >>> fs.SkewSymmetric(packed=True).apply(torch.tensor([2.0]))
      tensor([[ 0., -2.],
              [ 2.,  0.]])
    """

    packed: bool = False
    square = True
    _size_formula = "n(n-1)/2"

    def _size(self, n: int) -> int:
        return n * (n - 1) // 2

    def _pattern(self, m: int, n: int, device: torch.device) -> Pattern:
        rows, cols = _rows_cols(m, n, device)
        high, low = torch.maximum(rows, cols), torch.minimum(rows, cols)
        size = self._size(n)
        index = torch.where(rows == cols, size, high * (high - 1) // 2 + low).flatten()
        sign = torch.where(rows >= cols, 1, -1).flatten()
        return Pattern(index, sign, size)

    def _project_full(self, value: Tensor) -> Tensor:
        return (value - value.mT) / 2


class _AbstractConstantDiagonals(AbstractLinear):
    """Constant along one family of ``m + n - 1`` (anti-)diagonals, numbered by ``_line``."""

    _size_formula = "2n-1"

    def _size(self, n: int) -> int:
        return 2 * n - 1

    @abc.abstractmethod
    def _line(self, rows: Tensor, cols: Tensor, m: int) -> Tensor:
        """The number of the (anti-)diagonal each entry ``(rows, cols)`` lies on."""

    def _pattern(self, m: int, n: int, device: torch.device) -> Pattern:
        rows, cols = _rows_cols(m, n, device)
        return Pattern(self._line(rows, cols, m).flatten(), None, m + n - 1)


@dataclasses.dataclass(frozen=True)
class Toeplitz(_AbstractConstantDiagonals):
    """Matrices constant along every diagonal, ``A[i, j] = c[j - i]`` (rectangular allowed).

    Args:
      packed: raw is the ``2n - 1`` diagonal values, from the bottom-left corner to the
        top-right; square matrices only.

    Example:
      >>> fs.Toeplitz(packed=True).apply(torch.tensor([1.0, 2.0, 3.0]))
      tensor([[2., 3.],
              [1., 2.]])
    """

    packed: bool = False

    def _line(self, rows: Tensor, cols: Tensor, m: int) -> Tensor:
        return cols - rows + m - 1

    def _operator(self, raw: Tensor) -> ops.Operator:
        if self.packed:
            return ops.Toeplitz(raw, raw.shape[-1] // 2 + 1)
        value = self._apply(raw)
        first_column = value[..., :, 0].flip(-1)
        return ops.Toeplitz(torch.cat([first_column, value[..., 0, 1:]], -1), value.shape[-2])


@dataclasses.dataclass(frozen=True)
class Hankel(_AbstractConstantDiagonals):
    """Matrices constant along every anti-diagonal, ``A[i, j] = c[i + j]`` (rectangular allowed).

    Args:
      packed: raw is the ``2n - 1`` anti-diagonal values, from the top-left corner to the
        bottom-right; square matrices only.

    Example:
      >>> fs.Hankel(packed=True).apply(torch.tensor([1.0, 2.0, 3.0]))
      tensor([[1., 2.],
              [2., 3.]])
    """

    packed: bool = False

    def _line(self, rows: Tensor, cols: Tensor, m: int) -> Tensor:
        return rows + cols

    def _operator(self, raw: Tensor) -> ops.Operator:
        if self.packed:
            return ops.Hankel(raw, raw.shape[-1] // 2 + 1)
        value = self._apply(raw)
        return ops.Hankel(torch.cat([value[..., 0, :], value[..., 1:, -1]], -1), value.shape[-2])


@dataclasses.dataclass(frozen=True)
class Circulant(AbstractLinear):
    """Square circulant matrices, ``A[i, j] = c[(j - i) mod n]``: each row a cyclic shift.

    Args:
      packed: raw is the first row ``c`` (``n`` entries).

    Example:
      >>> fs.Circulant(packed=True).apply(torch.tensor([1.0, 2.0, 3.0]))
      tensor([[1., 2., 3.],
              [3., 1., 2.],
              [2., 3., 1.]])
    """

    packed: bool = False
    square = True
    _size_formula = "n"

    def _size(self, n: int) -> int:
        return n

    def _pattern(self, m: int, n: int, device: torch.device) -> Pattern:
        rows, cols = _rows_cols(m, n, device)
        return Pattern(((cols - rows) % n).flatten(), None, n)

    def _operator(self, raw: Tensor) -> ops.Operator:
        return ops.Circulant(raw if self.packed else self._apply(raw)[..., 0, :])
