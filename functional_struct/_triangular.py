"""Mask structures: matrices with fixed zeros (triangular, diagonal, banded, block, any mask).

Masks are linear: ``apply`` of a full raw matrix zeroes the entries outside the pattern (the
orthogonal projection), ``inverse`` is the identity on members, and triangular, diagonal and
banded masks also take ``packed=True``, a raw vector of the free entries row by row. Full forms
zero entries with ``torch.triu``/``torch.tril`` where they can, so no mask tensor is built.
"""

from __future__ import annotations

import abc
import dataclasses
import math

import torch
from torch import Tensor

from ._linear import AbstractLinear, Pattern, band_pattern, band_size
from ._rawform import RawShape, one_tensor
from ._validate import check_bool_matrix, check_int, check_ints
from .linalg import operators as ops

__all__ = [
    "Banded",
    "BlockDiagonal",
    "Diagonal",
    "LowerTriangular",
    "Masked",
    "UpperTriangular",
]


class _AbstractBand(AbstractLinear):
    """The entries with ``lo <= j - i <= hi`` (``lo``/``hi`` may be infinite)."""

    @abc.abstractmethod
    def _band(self) -> tuple[float, float]:
        """The offsets ``(lo, hi)`` of the band's lowest and highest diagonals."""

    def _size(self, n: int) -> int:
        return band_size(n, *self._band())

    def _pattern(self, m: int, n: int, device: torch.device) -> Pattern:
        lo, hi = self._band()
        return band_pattern(n, lo, hi, self._size(n), device)


@dataclasses.dataclass(frozen=True)
class UpperTriangular(_AbstractBand):
    """Matrices that are zero below the ``diagonal``-th diagonal (rectangular allowed).

    Args:
      diagonal: which diagonal to keep, as in ``torch.triu``: 0 keeps the main diagonal,
        1 makes the matrix strictly upper-triangular, -1 keeps one sub-diagonal as well.
      packed: raw is the vector of the free entries, row by row (``n(n+1)/2`` of them for
        ``diagonal=0``); square matrices only.

    Example:
      >>> fs.UpperTriangular().apply(torch.ones(2, 2))
      tensor([[1., 1.],
              [0., 1.]])
      >>> fs.UpperTriangular(packed=True).apply(torch.tensor([1.0, 2.0, 3.0]))
      tensor([[1., 2.],
              [0., 3.]])
    """

    diagonal: int = 0
    packed: bool = False
    _size_formula = "n(n+1)/2 for diagonal=0"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int(self, "diagonal", self.diagonal)

    def _band(self) -> tuple[float, float]:
        return self.diagonal, math.inf

    def _operator(self, raw: Tensor) -> ops.Operator:
        value = self._apply(raw)
        if value.shape[-1] != value.shape[-2] or self.diagonal < 0:
            return ops.Dense(value)
        return ops.Triangular(value, upper=True)

    def _project_full(self, value: Tensor) -> Tensor:
        return torch.triu(value, self.diagonal)


@dataclasses.dataclass(frozen=True)
class LowerTriangular(_AbstractBand):
    """Matrices that are zero above the ``diagonal``-th diagonal (rectangular allowed).

    Args:
      diagonal: which diagonal to keep, as in ``torch.tril``: 0 keeps the main diagonal,
        -1 makes the matrix strictly lower-triangular, 1 keeps one super-diagonal as well.
      packed: raw is the vector of the free entries, row by row; square matrices only.

    Example:
      >>> fs.LowerTriangular().apply(torch.ones(2, 3))
      tensor([[1., 0., 0.],
              [1., 1., 0.]])
    """

    diagonal: int = 0
    packed: bool = False
    _size_formula = "n(n+1)/2 for diagonal=0"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int(self, "diagonal", self.diagonal)

    def _band(self) -> tuple[float, float]:
        return -math.inf, self.diagonal

    def _operator(self, raw: Tensor) -> ops.Operator:
        value = self._apply(raw)
        if value.shape[-1] != value.shape[-2] or self.diagonal > 0:
            return ops.Dense(value)
        return ops.Triangular(value, upper=False)

    def _project_full(self, value: Tensor) -> Tensor:
        return torch.tril(value, self.diagonal)


@dataclasses.dataclass(frozen=True)
class Diagonal(_AbstractBand):
    """Matrices that are zero off the main diagonal (rectangular allowed).

    Args:
      packed: raw is the vector of the ``n`` diagonal entries; square matrices only.

    Example:
      >>> fs.Diagonal().apply(torch.arange(1.0, 5.0).reshape(2, 2))
      tensor([[1., 0.],
              [0., 4.]])
    """

    packed: bool = False
    _size_formula = "n"

    def _band(self) -> tuple[float, float]:
        return 0, 0

    def _operator(self, raw: Tensor) -> ops.Operator:
        if self.packed:
            return ops.Diagonal(raw)
        value = self._apply(raw)
        if value.shape[-1] != value.shape[-2]:
            return ops.Dense(value)
        return ops.Diagonal(value.diagonal(dim1=-2, dim2=-1))

    def _project_full(self, value: Tensor) -> Tensor:
        # tril then triu keeps exactly the main diagonal, for any rectangle, with no mask tensor.
        return torch.triu(torch.tril(value))


@dataclasses.dataclass(frozen=True)
class Banded(_AbstractBand):
    """Matrices that are zero outside ``lower`` sub-diagonals and ``upper`` super-diagonals.

    ``Banded(1, 1)`` is tridiagonal, ``Banded(0, 0)`` diagonal. Rectangular allowed.

    Args:
      lower: how many diagonals below the main one are free, >= 0.
      upper: how many diagonals above the main one are free, >= 0.
      packed: raw is the vector of the free entries, row by row; square matrices only.

    Example:
      >>> fs.Banded(1, 0).apply(torch.ones(3, 3))
      tensor([[1., 0., 0.],
              [1., 1., 0.],
              [0., 1., 1.]])
    """

    lower: int
    upper: int
    packed: bool = False
    _size_formula = "n(lower+upper+1) - lower(lower+1)/2 - upper(upper+1)/2 for n > both"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int(self, "lower", self.lower, minimum=0)
        check_int(self, "upper", self.upper, minimum=0)

    def _band(self) -> tuple[float, float]:
        return -self.lower, self.upper

    def _operator(self, raw: Tensor) -> ops.Operator:
        value = self._apply(raw)
        if value.shape[-1] != value.shape[-2]:
            return ops.Dense(value)
        return ops.Banded(value, self.lower, self.upper)

    def _project_full(self, value: Tensor) -> Tensor:
        return torch.triu(torch.tril(value, self.upper), -self.lower)


class _AbstractFixedMask(AbstractLinear):
    """A mask of one fixed shape, given by a 0/1 matrix; no packed form."""

    packed = False
    _size_formula = "the number of entries the mask keeps"

    def _refusal(self, name: str) -> str | None:
        if name == "log_det":
            return "its raw is the full matrix, projected onto the mask (it has no packed form)"
        return super()._refusal(name)

    @abc.abstractmethod
    def _mask(self, device: torch.device) -> Tensor:
        """The bool mask of the one accepted shape."""

    @abc.abstractmethod
    def _mask_shape(self) -> tuple[int, int]:
        """The one accepted core shape."""

    def value_shape(self, raw_shape: RawShape) -> torch.Size:
        """The mask's shape, the only one accepted."""
        if one_tensor(raw_shape, 2) != self._mask_shape():
            raise ValueError(f"needs a matrix of shape {self._mask_shape()} in its last two dims")
        return torch.Size(self._mask_shape())

    def _size(self, n: int) -> int:
        return int(self._mask(torch.device("cpu")).sum())

    def _pattern(self, m: int, n: int, device: torch.device) -> Pattern:
        inside = self._mask(device).flatten()
        size = self._size(n)
        return Pattern(torch.where(inside, torch.cumsum(inside.long(), 0) - 1, size), None, size)

    def _project_full(self, value: Tensor) -> Tensor:
        return value * self._mask(value.device).to(value.dtype)


@dataclasses.dataclass(frozen=True)
class BlockDiagonal(_AbstractFixedMask):
    """Square block-diagonal matrices with diagonal blocks of the given sizes.

    Args:
      sizes: the side of each diagonal block; the matrix is ``sum(sizes)`` square.

    Example:
      >>> fs.BlockDiagonal((1, 2)).apply(torch.ones(3, 3))
      tensor([[1., 0., 0.],
              [0., 1., 1.],
              [0., 1., 1.]])
    """

    sizes: tuple[int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "sizes", check_ints(self, "sizes", self.sizes, minimum=1))

    def _mask_shape(self) -> tuple[int, int]:
        n = sum(self.sizes)
        return n, n

    def _operator(self, raw: Tensor) -> ops.Operator:
        value = self._apply(raw)
        blocks: list[ops.Operator] = []
        start = 0
        for size in self.sizes:
            blocks.append(ops.Dense(value[..., start : start + size, start : start + size]))
            start += size
        return ops.BlockDiagonal(blocks)

    def _mask(self, device: torch.device) -> Tensor:
        # Block id of each index from comparisons with the Python offsets: built from arange on
        # the value's device, with no host-made tensor constant for torch.compile to capture.
        index = torch.arange(sum(self.sizes), device=device)
        block = torch.zeros_like(index)
        offset = 0
        for size in self.sizes[:-1]:
            offset += size
            block = block + (index >= offset).long()
        return block.unsqueeze(-1) == block


@dataclasses.dataclass(frozen=True)
class Masked(_AbstractFixedMask):
    """Matrices that are zero wherever a fixed boolean ``mask`` is False (any sparsity pattern).

    Args:
      mask: a 2-D bool tensor or nested lists of bools; stored as a tuple of tuples so that the
        structure stays a hashable value. Its shape is the only shape accepted.

    Example:
      >>> fs.Masked([[True, False], [True, True]]).apply(torch.ones(2, 2))
      tensor([[1., 0.],
              [1., 1.]])
    """

    mask: tuple[tuple[bool, ...], ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "mask", check_bool_matrix(self, "mask", self.mask))

    def _mask_shape(self) -> tuple[int, int]:
        return len(self.mask), len(self.mask[0])

    def _mask(self, device: torch.device) -> Tensor:
        return torch.tensor(self.mask, dtype=torch.bool, device=device)
