"""Packed raw forms for structures that read an ``n x n`` raw on its lower triangle.

``PositiveDefinite``, ``CholeskyFactor`` and ``Correlation`` read their raw matrix on the lower
triangle, ``SpecialOrthogonal`` below the diagonal; the other entries are unused. With
``packed=True`` the raw is that triangle only, row by row: every raw entry is a free
coordinate, so the map is a bijection onto the set and has a log-det Jacobian (capability
``"log_det"``), and no optimizer state or weight decay is spent on unused entries.

The triangle is read and written with the static ``gather``/``scatter_add`` patterns of
``_linear.py`` (right under ``vmap``, ``jacfwd`` and ``torch.compile``).
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import Tensor

from ._linear import Pattern, band_pattern, square_side
from ._rawform import RawShape, one_tensor
from ._structure import AbstractStructure

__all__ = ["PackedTriangle", "pack_lower", "triangle_size", "unpack_lower"]


def triangle_size(n: int, strict: bool) -> int:
    """Entries of an ``n x n`` lower triangle: ``n(n+1)/2``, or ``n(n-1)/2`` below the diagonal."""
    return n * (n - 1) // 2 if strict else n * (n + 1) // 2


def _pattern(n: int, strict: bool, device: torch.device) -> Pattern:
    return band_pattern(n, -math.inf, -1 if strict else 0, triangle_size(n, strict), device)


def unpack_lower(packed: Tensor, n: int, strict: bool) -> Tensor:
    """The ``n x n`` matrices whose lower triangle (row by row) is ``packed``, zero elsewhere.

    Example:
      >>> unpack_lower(torch.tensor([1.0, 2.0, 3.0]), 2, strict=False)
      tensor([[1., 0.],
              [2., 3.]])
    """
    return _pattern(n, strict, packed.device).unpack(packed, (n, n))


def pack_lower(matrix: Tensor, strict: bool) -> Tensor:
    """The lower triangle of ``matrix``, row by row (``(..., n, n)`` -> ``(..., size)``).

    Example:
      >>> pack_lower(torch.tensor([[1.0, 9.0], [2.0, 3.0]]), strict=True)
      tensor([2.])
    """
    n = matrix.shape[-1]
    return _pattern(n, strict, matrix.device).coordinates(matrix)


class PackedTriangle(AbstractStructure):
    """A square structure whose raw is a matrix read on its lower triangle, or that triangle.

    Subclasses have a ``packed`` dataclass field and set ``_strict`` (True: the raw diagonal
    is unused too). Their hooks work on the full matrix: ``_full_raw`` unpacks a raw,
    ``_packed_raw`` packs a full one back; only the packed form has the log-det capability.
    """

    packed: bool
    _strict: ClassVar[bool] = False
    square = True

    def raw_shape(self, shape: tuple[int, ...]) -> RawShape:
        """The matrix itself, or with ``packed=True`` its lower triangle as a vector."""
        if shape[-1] != shape[-2]:
            raise ValueError("needs a square matrix in its last two dims")
        if not self.packed:
            return torch.Size(shape)
        return torch.Size([triangle_size(shape[-1], self._strict)])

    def value_shape(self, raw_shape: RawShape) -> torch.Size:
        """``n x n`` for a square raw, or for a packed length that fits ``n``."""
        if not self.packed:
            return super().value_shape(raw_shape)
        (length,) = one_tensor(raw_shape, 1)
        formula = "n(n-1)/2" if self._strict else "n(n+1)/2"
        n, problem = square_side(length, lambda k: triangle_size(k, self._strict), formula)
        if n is None:
            raise ValueError(problem)
        return torch.Size([n, n])

    def _full_raw(self, raw: Tensor) -> Tensor:
        if not self.packed:
            return raw
        n, _ = square_side(raw.shape[-1], lambda k: triangle_size(k, self._strict), "")
        assert n is not None  # checked by the public method
        return unpack_lower(raw, n, self._strict)

    def _packed_raw(self, full: Tensor) -> Tensor:
        return pack_lower(full, self._strict) if self.packed else full

    def _refusal(self, name: str) -> str | None:
        # The log-det needs the packed form: the full one has unused entries.
        if name == "log_det" and not self.packed:
            unused = "diagonal and upper triangle" if self._strict else "upper triangle"
            return (
                f"its raw matrix has unused entries (the {unused}), so apply is not a "
                "bijection; use packed=True, whose raw is the lower triangle only"
            )
        return super()._refusal(name)
