"""Mask structures: matrices with fixed zeros (triangular, diagonal).

Masks are linear maps: ``apply`` zeroes the entries outside the pattern, ``project`` does the
same (the Frobenius-nearest member), and ``inverse`` is the identity on members. The zeroing uses
``torch.triu``/``torch.tril`` directly, so no mask tensor is built or stored.
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import Tensor

from ._structure import AbstractStructure, close

__all__ = ["Diagonal", "LowerTriangular", "UpperTriangular"]


class _AbstractMask(AbstractStructure):
    """A linear structure whose members are the fixed points of an entry-zeroing ``_apply``."""

    def _inverse(self, value: Tensor) -> Tensor:
        # apply is idempotent, so a member is its own raw.
        return value.clone()

    def _project(self, value: Tensor) -> Tensor:
        return self._apply(value)

    def _contains(self, value: Tensor, atol: float, rtol: float) -> Tensor:
        # Entries outside the pattern must be (nearly) zero; those inside are free.
        return close(value, self._apply(value), atol, rtol)

    def _init(self, shape, generator, dtype, device) -> Tensor:
        # Variance 1 / columns, as a linear layer's weight; entries outside the pattern are zero.
        scale = 1.0 / math.sqrt(max(shape[-1], 1))
        raw = torch.randn(shape, generator=generator, dtype=dtype, device=device) * scale
        return self._apply(raw)


def _check_offset(structure: AbstractStructure, diagonal: object) -> None:
    if isinstance(diagonal, bool) or not isinstance(diagonal, int):
        raise TypeError(
            f"{type(structure).__name__}: diagonal must be an int (the torch.triu/torch.tril "
            f"offset), got {diagonal!r}."
        )


@dataclasses.dataclass(frozen=True)
class UpperTriangular(_AbstractMask):
    """Matrices that are zero below the ``diagonal``-th diagonal (rectangular allowed).

    Args:
      diagonal: which diagonal to keep, as in ``torch.triu``: 0 keeps the main diagonal,
        1 makes the matrix strictly upper-triangular, -1 keeps one sub-diagonal as well.

    Example:
      >>> fs.UpperTriangular().apply(torch.ones(2, 2))
      tensor([[1., 1.],
              [0., 1.]])
      >>> bool(fs.UpperTriangular(diagonal=1).contains(torch.eye(2)))
      False
    """

    diagonal: int = 0

    def __post_init__(self) -> None:
        _check_offset(self, self.diagonal)

    def _apply(self, raw: Tensor) -> Tensor:
        return torch.triu(raw, self.diagonal)


@dataclasses.dataclass(frozen=True)
class LowerTriangular(_AbstractMask):
    """Matrices that are zero above the ``diagonal``-th diagonal (rectangular allowed).

    Args:
      diagonal: which diagonal to keep, as in ``torch.tril``: 0 keeps the main diagonal,
        -1 makes the matrix strictly lower-triangular, 1 keeps one super-diagonal as well.

    Example:
      >>> fs.LowerTriangular().apply(torch.ones(2, 3))
      tensor([[1., 0., 0.],
              [1., 1., 0.]])
    """

    diagonal: int = 0

    def __post_init__(self) -> None:
        _check_offset(self, self.diagonal)

    def _apply(self, raw: Tensor) -> Tensor:
        return torch.tril(raw, self.diagonal)


@dataclasses.dataclass(frozen=True)
class Diagonal(_AbstractMask):
    """Matrices that are zero off the main diagonal (rectangular allowed).

    ``init`` draws the diagonal from a standard normal.

    Example:
      >>> fs.Diagonal().apply(torch.arange(1.0, 5.0).reshape(2, 2))
      tensor([[1., 0.],
              [0., 4.]])
    """

    def _apply(self, raw: Tensor) -> Tensor:
        # tril then triu keeps exactly the main diagonal, for any rectangle, with no mask tensor.
        return torch.triu(torch.tril(raw))

    def _init(self, shape, generator, dtype, device) -> Tensor:
        return self._apply(torch.randn(shape, generator=generator, dtype=dtype, device=device))
