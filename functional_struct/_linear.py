"""Linear structures: subspaces of matrices, with full and packed raw forms.

A linear structure is a subspace spanned by matrices with disjoint supports and entries in
{-1, 0, +1} (triangles, bands, symmetric pairs, diagonals of a Toeplitz matrix, ...). Such a
subspace is described by a *pattern*: for every matrix entry, which free coordinate it holds
and with what sign. From the pattern alone follow

- the packed map, coordinates -> matrix: a ``gather`` with a static index,
- the least-squares coordinates of any matrix: a ``scatter_add`` with the same index,
- the orthogonal projection: the two composed.

``gather``/``scatter_add`` with static indices are right under ``vmap``, ``jacfwd`` and
``torch.compile`` (``index_put`` gets compiled forward-mode tangents wrong in torch 2.13, and
boolean-mask assignment breaks compile), so packed forms never use either.
"""

from __future__ import annotations

import abc
import dataclasses
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ._rawform import RawShape, one_tensor
from ._structure import SUBSPACE_DTYPES, AbstractStructure, close
from ._validate import check_bool

__all__ = ["CONJUGATE", "IMAGINARY", "REAL", "AbstractLinear", "Pattern", "band_size"]

CONJUGATE, REAL, IMAGINARY = 1, 2, 3
"""Codes of :attr:`Pattern.part`: an entry holds ``conj(c)``, ``Re c`` or ``i Im c``."""


def _take_parts(flat: Tensor, part: Tensor) -> Tensor:
    """Each entry's part of its coordinate (:attr:`Pattern.part`).

    Real entries have no imaginary part (``IMAGINARY`` gives 0) and are their own conjugate
    and real part.
    """
    if not flat.is_complex():
        return torch.where(part == IMAGINARY, 0.0, flat)
    flat = torch.where(part == CONJUGATE, flat.conj(), flat)
    flat = torch.where(part == REAL, flat.real.to(flat.dtype), flat)
    return torch.where(part == IMAGINARY, (1j * flat.imag).to(flat.dtype), flat)


@dataclasses.dataclass(frozen=True)
class Pattern:
    """Where each entry of an ``m x n`` matrix lives in the packed vector of ``size`` coordinates.

    Attributes:
      index: ``(m * n,)`` long tensor; entries outside the subspace point at the extra slot
        ``size`` (a zero in ``unpack``, dropped by ``coordinates``).
      sign: ``(m * n,)`` tensor of +-1, or None when every sign is +1.
      size: the number of free coordinates.
      part: for complex members, ``(m * n,)`` codes of what each entry holds of its
        coordinate ``c``: ``CONJUGATE`` (``conj(c)``), ``REAL`` (``Re c``), ``IMAGINARY``
        (``i Im c``) or 0 (``c``); None when every entry holds its coordinate. Hermitian
        matrices conjugate above the diagonal and keep the real part on it.
    """

    index: Tensor
    sign: Tensor | None
    size: int
    part: Tensor | None = None

    def unpack(self, packed: Tensor, shape: tuple[int, int]) -> Tensor:
        """The matrices with coordinates ``packed`` (``(..., size)`` -> ``(..., m, n)``)."""
        padded = torch.cat([packed, packed.new_zeros((*packed.shape[:-1], 1))], dim=-1)
        index = self.index.expand(*packed.shape[:-1], self.index.numel())
        flat = padded.gather(-1, index)
        if self.sign is not None:
            flat = flat * self.sign.to(flat.dtype)
        if self.part is not None:
            flat = _take_parts(flat, self.part)
        return flat.unflatten(-1, shape)

    def coordinates(self, value: Tensor) -> Tensor:
        """Least-squares coordinates of ``value`` (``(..., m, n)`` -> ``(..., size)``).

        For a member of the subspace these are exact; for any matrix, ``unpack`` of them is its
        orthogonal projection onto the subspace (each coordinate averages its entries).
        """
        flat = value.flatten(-2)
        if self.sign is not None:
            flat = flat * self.sign.to(flat.dtype)
        if self.part is not None and flat.is_complex():  # conjugated entries: back
            flat = torch.where(self.part == CONJUGATE, flat.conj(), flat)
        # Entries outside the subspace go to the extra slot, so an Inf there stays out.
        index = self.index.expand(flat.shape)
        sums = flat.new_zeros((*flat.shape[:-1], self.size + 1)).scatter_add(-1, index, flat)
        counts = torch.zeros(self.size + 1, dtype=flat.dtype, device=flat.device)
        counts = counts.scatter_add(0, self.index, torch.ones_like(self.index, dtype=flat.dtype))
        return sums[..., : self.size] / counts[: self.size]

    def project(self, value: Tensor) -> Tensor:
        """The orthogonal projection of ``value`` onto the subspace."""
        m, n = value.shape[-2:]
        return self.unpack(self.coordinates(value), (m, n))


def band_size(n: int, lo: float, hi: float) -> int:
    """How many entries ``(i, j)`` of an ``n x n`` matrix have ``lo <= j - i <= hi``."""
    lo, hi = max(lo, -(n - 1)), min(hi, n - 1)
    if lo > hi:
        return 0
    lo, hi = int(lo), int(hi)

    def abs_sum(a: int, b: int) -> int:  # sum of |s| for a <= s <= b
        if a >= 0:
            return (a + b) * (b - a + 1) // 2
        if b <= 0:
            return abs_sum(-b, -a)
        return abs_sum(0, -a) + abs_sum(0, b)

    return (hi - lo + 1) * n - abs_sum(lo, hi)


def band_pattern(n: int, lo: float, hi: float, size: int, device: torch.device) -> Pattern:
    """The entries with ``lo <= j - i <= hi``, numbered row by row."""
    offset = torch.arange(n, device=device) - torch.arange(n, device=device).unsqueeze(-1)
    inside = ((offset >= lo) & (offset <= hi)).flatten()
    index = torch.where(inside, torch.cumsum(inside.long(), 0) - 1, size)
    return Pattern(index, None, size)


def square_side(
    length: int, size_of: Callable[[int], int], what: str
) -> tuple[int | None, str | None]:
    """The side ``n`` with ``size_of(n) == length``, or an explanation of why there is none.

    ``length`` is only ever compared, never computed with: under ``torch.compile`` with dynamic
    shapes it is a symbol, and the search then stays on plain ints (its last comparison pins the
    symbol to one value) instead of building expressions that inductor cannot bound.
    """
    lo, hi = 1, 2
    while size_of(hi) < length:  # sizes grow at least linearly, so this ends quickly
        hi *= 2
    while lo < hi:
        mid = (lo + hi) // 2
        if size_of(mid) < length:
            lo = mid + 1
        else:
            hi = mid
    if size_of(lo) == length:
        return lo, None
    sizes = ", ".join(f"{size_of(k)} (n={k})" for k in range(1, 6))
    return None, (
        f"is packed, so its last dim must be {what} for some n: {sizes}, ...; {length} fits no n"
    )


class AbstractLinear(AbstractStructure):
    """A linear subspace with a full raw form (a matrix) and a packed one (its coordinates).

    With ``packed=False`` the raw tensor is a matrix and ``apply`` is the orthogonal projection
    onto the subspace, so ``inverse`` is the identity on members and the gradient with respect
    to the raw matrix already lies in the subspace. With ``packed=True`` (square matrices) the
    raw tensor is the vector of free coordinates only: no dead entries in optimizer state, no
    weight decay on entries that do nothing.

    Subclasses give ``packed`` as a dataclass field and implement ``_size`` (coordinates of an
    ``n x n`` member), ``_size_formula`` (it in words, for errors) and ``_pattern``; they may
    override ``_project_full`` with a faster direct formula. This is an internal extension
    point: ``Pattern`` is private, and so is this class.
    """

    packed: bool
    inverse_outside = "project"
    linear = True
    dtypes = SUBSPACE_DTYPES

    @property
    def square(self) -> bool:  # noqa: D102 - documented on the base
        return self.packed

    def __post_init__(self) -> None:
        check_bool(self, "packed", self.packed)

    def _check_raw(self, raw: Any, method: str) -> None:
        # The full form's raw is a value of the structure: a value's checks, without reading
        # the raw against its form (a measurable part of a small apply).
        if self.packed:
            super()._check_raw(raw, method)
        else:
            self._check_value(raw, method, "raw")

    @abc.abstractmethod
    def _size(self, n: int) -> int:
        """How many free coordinates an ``n x n`` member has (its packed length)."""

    @property
    @abc.abstractmethod
    def _size_formula(self) -> str:
        """``_size`` in words, for error messages (``"n(n+1)/2"``)."""

    @abc.abstractmethod
    def _pattern(self, m: int, n: int, device: torch.device) -> Pattern:
        """Where each entry of an ``m x n`` member lives among the coordinates."""

    def _project_full(self, value: Tensor) -> Tensor:
        m, n = value.shape[-2:]
        return self._pattern(m, n, value.device).project(value)

    # ------------------------------------------------------------------------ the raw form
    def raw_shape(self, shape: tuple[int, ...]) -> RawShape:
        """The packed form takes the ``_size(n)`` free coordinates of an ``n x n`` member."""
        if not self.packed:
            return torch.Size(shape)
        if shape[-1] != shape[-2]:
            raise ValueError("needs a square matrix in its last two dims (packed forms are square)")
        return torch.Size([self._size(shape[-1])])

    def value_shape(self, raw_shape: RawShape) -> torch.Size:
        """``n x n`` for a packed length that fits ``n`` (an empty one fits several: refused)."""
        if not self.packed:
            return super().value_shape(raw_shape)
        raw_shape = one_tensor(raw_shape, 1)
        if self._size(1) == 0 and self._size(2) == 0 and raw_shape[0] == 0:
            raise ValueError(
                "is packed, and an empty raw fits several n (no free entries at these sizes); "
                "use packed=False"
            )
        n, problem = square_side(raw_shape[0], self._size, self._size_formula)
        if n is None:
            raise ValueError(problem)
        return torch.Size([n, n])

    def _side(self, packed: Tensor) -> int:
        side, _ = square_side(packed.shape[-1], self._size, self._size_formula)
        assert side is not None  # checked in apply
        return side

    # -------------------------------------------------------------------------- the methods
    def _apply(self, raw: Tensor) -> Tensor:
        if not self.packed:
            return self._project_full(raw)
        n = self._side(raw)
        return self._pattern(n, n, raw.device).unpack(raw, (n, n))

    def _inverse(self, value: Tensor) -> Tensor:
        if not self.packed:
            return value.clone()  # members are fixed points of the projection
        m, n = value.shape[-2:]
        return self._pattern(m, n, value.device).coordinates(value)

    def _project(self, value: Tensor) -> Tensor:
        return self._project_full(value)

    # ------------------------------------------------------------ capability "manifold"
    def _tangent(self, value: Tensor, vector: Tensor) -> Tensor:
        return self._project_full(vector)

    def _retract(self, value: Tensor, step: Tensor) -> Tensor:
        return self._project_full(value + step)

    # ------------------------------------------------------------- capability "log_det"
    def _refusal(self, name: str) -> str | None:
        # The packed form is a bijection (log-det 0); the full form projects, and is not.
        if name == "log_det" and not self.packed:
            return "its full raw form is projected onto the set, not a bijection; use packed=True"
        return super()._refusal(name)

    def _forward_and_log_det(self, raw: Tensor) -> tuple[Tensor, Tensor]:
        zeros = (raw.real if raw.is_complex() else raw).new_zeros(raw.shape[:-1])
        return self._apply(raw), zeros  # coordinates to themselves

    def _log_det_coordinates(self, value: Tensor, tangent: Tensor) -> Tensor:
        m, n = value.shape[-2:]
        return self._pattern(m, n, value.device).coordinates(tangent)

    def _contains(self, value: Tensor, atol: float, rtol: float) -> Tensor:
        return close(value, self._project_full(value), atol, rtol)

    def _init(self, shape, generator, dtype, device) -> Tensor:
        # A member with entries of variance 1 / columns, as a linear layer's weight.
        noise = torch.randn(shape, generator=generator, dtype=dtype, device=device)
        return self._inverse(self._project_full(noise / math.sqrt(max(shape[-1], 1))))
