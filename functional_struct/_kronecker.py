"""``Kronecker``: products ``A ⊗ B ⊗ ...`` of members of other structures (separable matrices).

The raw is the tuple of the factors' raws, so ``fs.linalg`` works factor by factor: a solve or
log-determinant of ``PositiveDefinite(n₁) ⊗ PositiveDefinite(n₂)`` costs two small Cholesky
factorizations, ``O(n₁³ + n₂³)``, against ``O(n₁³ n₂³)`` for the dense matrix.

Deciding membership needs the factors back from the product. ``A ⊗ B`` rearranged
(``R[(a, c), (b, d)] = A[a, c] B[b, d]``) is the rank-one matrix ``vec(A) vec(B)ᵀ`` (Van Loan
and Pitsianis), so its top singular pair gives ``A₀`` and ``B₀`` with ``A₀ ⊗ B₀ = A ⊗ B`` and
``A = c A₀``, ``B = B₀ / c`` for an unknown ``c ≠ 0``. For each sign, the scale is searched
among: 1 (enough for factors closed under positive scaling: subspaces, cones such as
``PositiveSemidefinite`` or ``LowRank``); the scales at which each factor's projection of
``A₀`` (or ``B₀``) points back along it (a factor with one scale, such as ``Orthogonal``); and
for sets that say where they start (``_entry_scale``: a floor, as in ``PositiveDefinite`` and
``CholeskyFactor``, one scale, as in ``Correlation``, and nested products) the least scale of
the first factor, the greatest of the second, and their geometric mean, the only point of the
window when both sit on their boundaries. Two more pairs cover a zero product. The factors
are projected before the product is compared with the value, in float64. More factors nest:
``A ⊗ B ⊗ C`` is ``A ⊗ (B ⊗ C)``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch
from torch import Tensor

from . import _guards
from ._kernels import largest_entry_signs
from ._rawform import RawShape, map_raw, parts_of
from ._structure import LINALG_DTYPES, AbstractStructure, default_tolerances
from ._validate import invalid
from .linalg import operators as ops
from .linalg._kronecker import kron_dense

__all__ = ["Kronecker"]


def _check_sizes(
    owner: Any, factors: tuple[Any, ...], sizes: object
) -> tuple[tuple[int, int], ...]:
    expected = f"a tuple of {len(factors)} sizes, one per factor: an int n (n x n) or (rows, cols)"
    if not isinstance(sizes, (tuple, list)) or len(sizes) != len(factors):
        raise invalid(
            owner,
            "sizes",
            expected,
            sizes,
            TypeError if not isinstance(sizes, (tuple, list)) else ValueError,
        )
    shapes = []
    for i, size in enumerate(sizes):
        pair = (size, size) if isinstance(size, int) and not isinstance(size, bool) else size
        if (
            not isinstance(pair, (tuple, list))
            or len(pair) != 2
            or not all(isinstance(d, int) and not isinstance(d, bool) for d in pair)
        ):
            raise invalid(
                owner, f"sizes[{i}]", "an int n or a pair (rows, cols) of ints", size, TypeError
            )
        if min(pair) < 1:
            raise invalid(owner, f"sizes[{i}]", "positive", size)
        shapes.append((int(pair[0]), int(pair[1])))
    return tuple(shapes)


@dataclasses.dataclass(frozen=True, init=False)
class Kronecker(AbstractStructure[Any]):
    """Kronecker products ``A ⊗ B ⊗ ...`` with each factor a member of its own structure.

    ``Kronecker(PositiveDefinite(), PositiveDefinite(), sizes=(32, 32))`` is the separable
    covariances of a 32 x 32 grid: ``apply((ra, rb))`` is ``kron(A, B)``, a 1024 x 1024
    matrix, and ``fs.linalg`` solves with it and takes its log-determinant through the two
    32 x 32 factors.

    ``contains`` recovers the factors from the rank-one structure of the rearranged product
    (see the module notes) and asks each factor; ``inverse`` gives the factors' raws of that
    split; ``project`` takes the nearest Kronecker product, splits it, and projects each
    factor: a member near the value, the nearest one when the factors are subspaces.
    Round trips carry the rounding of every factor's own: in float32, up to about 2e-4
    relative for two factors near their limits (``Correlation``, ``Orthogonal``).

    Args:
      *factors: two or more matrix structures (``core_ndim == 2``).
      sizes: one per factor, its core shape: an int ``n`` for ``n x n`` or ``(rows, cols)``.
        The product is ``prod(rows) x prod(cols)``.

    Example:
      >>> k = fs.Kronecker(fs.Diagonal(), fs.Symmetric(), sizes=(2, 2))
      >>> k.apply((torch.eye(2), torch.ones(2, 2)))
      tensor([[1., 1., 0., 0.],
              [1., 1., 0., 0.],
              [0., 0., 1., 1.],
              [0., 0., 1., 1.]])
    """

    _no_log_det = (
        "the factors' scales trade off (a ⊗ b = (c a) ⊗ (b / c)), so apply is not one-to-one"
    )

    factors: tuple[AbstractStructure[Any], ...]
    sizes: tuple[tuple[int, int], ...]

    inverse_outside = "nan"

    def __init__(self, *factors: AbstractStructure[Any], sizes: object) -> None:
        for i, factor in enumerate(factors):  # types first, then values
            if not isinstance(factor, AbstractStructure):
                raise invalid(
                    self,
                    f"factors[{i}]",
                    "a structure (such as fs.PositiveDefinite())",
                    factor,
                    TypeError,
                )
        if len(factors) < 2:
            raise invalid(self, "factors", "two or more structures", factors)
        for i, factor in enumerate(factors):
            if factor.core_ndim != 2:
                raise invalid(self, f"factors[{i}]", "a matrix structure (core_ndim 2)", factor)
        shapes = _check_sizes(self, factors, sizes)
        for i, (factor, shape) in enumerate(zip(factors, shapes, strict=True)):
            try:
                back = factor.value_shape(factor.raw_shape(shape))
            except ValueError as problem:
                raise invalid(
                    self, f"sizes[{i}]", f"a shape {factor!r} accepts ({problem})", shape
                ) from None
            if tuple(back) != shape or (factor.square and shape[0] != shape[1]):
                raise invalid(self, f"sizes[{i}]", f"a shape {factor!r} accepts", shape)
        object.__setattr__(self, "factors", tuple(factors))
        object.__setattr__(self, "sizes", shapes)

    def __repr__(self) -> str:
        sizes = tuple(r if r == c else (r, c) for r, c in self.sizes)
        return f"Kronecker({', '.join(map(repr, self.factors))}, sizes={sizes})"

    # ---------------------------------------------------------------------------- the form
    @property
    def dtypes(self) -> tuple[torch.dtype, ...]:  # noqa: D102 - documented on the base
        common = set(LINALG_DTYPES).intersection(*(set(f.dtypes) for f in self.factors))
        return tuple(d for d in LINALG_DTYPES if d in common)

    square = False  # one shape only (the product of sizes), which the shape round trip checks

    def _shape(self) -> tuple[int, int]:
        rows, cols = 1, 1
        for r, c in self.sizes:  # a loop, not math.prod of a generator, which dynamo cannot trace
            rows, cols = rows * r, cols * c
        return rows, cols

    def raw_shape(self, shape: tuple[int, ...]) -> RawShape:
        """The tuple of the factors' raws, each of its factor's ``sizes``."""
        return tuple(f.raw_shape(s) for f, s in zip(self.factors, self.sizes, strict=True))

    def value_shape(self, raw_shape: RawShape) -> torch.Size:
        """The product of the sizes, the only shape accepted."""
        parts = parts_of(raw_shape)
        if len(parts) != len(self.factors):
            raise ValueError(f"needs a tuple of {len(self.factors)} raws, one per factor")
        for i, (factor, part, size) in enumerate(zip(self.factors, parts, self.sizes, strict=True)):
            if tuple(factor.value_shape(part)) != size:
                raise ValueError(
                    f"factor {i} ({factor!r}) needs a raw of a {size[0]} x {size[1]} member"
                )
        return torch.Size(self._shape())

    def _rest(self) -> AbstractStructure[Any]:
        """The factors after the first, as one structure."""
        if len(self.factors) == 2:
            return self.factors[1]
        rest_sizes = self.sizes[1:]
        return Kronecker(*self.factors[1:], sizes=rest_sizes)

    # ---------------------------------------------------------------------------- the maps
    def _apply(self, raw: tuple[Any, ...]) -> Tensor:
        values = [f._apply(r) for f, r in zip(self.factors, raw, strict=True)]
        product = values[-1]
        for value in reversed(values[:-1]):
            product = kron_dense(value, product)
        return product

    def _operator(self, raw: tuple[Any, ...]) -> ops.Operator:
        operators = [f._operator(r) for f, r in zip(self.factors, raw, strict=True)]
        product = operators[-1]
        for operator in reversed(operators[:-1]):
            product = ops.Kronecker(operator, product)
        return product

    def _split(self, value: Tensor) -> tuple[Tensor, Tensor]:
        """``A₀, B₀`` with ``A₀ ⊗ B₀`` the nearest Kronecker product, of equal norms."""
        (n1, m1) = self.sizes[0]
        n, m = self._shape()
        n2, m2 = n // n1, m // m1
        grid = value.reshape(*value.shape[:-2], n1, n2, m1, m2).transpose(-3, -2)
        rearranged = grid.reshape(*value.shape[:-2], n1 * m1, n2 * m2)
        u, s, vh = _guards.svd(rearranged)
        left, right = u[..., :, :1], vh[..., :1, :].mT
        signs = largest_entry_signs(left)
        root = s[..., :1].sqrt().unsqueeze(-1)
        first = (left * signs * root).reshape(*value.shape[:-2], n1, m1)
        second = (right * signs * root).reshape(*value.shape[:-2], n2, m2)
        return first, second

    def _scales(self, first: Tensor, second: Tensor) -> Tensor:
        """Scales ``c`` to try for ``(c A₀, B₀ / c)``, stacked in front: ``(6, *batch, 1, 1)``."""
        rest = self._rest()
        tiny = torch.finfo(first.dtype).tiny
        by_first = _dot(self.factors[0]._project(first), first) / _dot(first, first).clamp_min(tiny)
        by_second = _dot(second, second) / _dot(rest._project(second), second).clamp_min(tiny)
        # A set with a floor (c A₀ is a member for c >= lo) or one scale says where it starts;
        # between A's entry and B's exit lies the window, a single point at the boundary.
        low = _entry_scale(self.factors[0], first, by_first)
        high = 1 / _entry_scale(rest, second, 1 / by_second)
        one = torch.ones_like(by_first)
        scales = torch.stack([one, by_first, by_second, low, high, (low * high).sqrt()])
        return torch.where(torch.isfinite(scales) & (scales > 0), scales, 1.0)

    def _entry_scale(self, value: Tensor) -> Tensor:
        """The least ``c > 0`` with ``c * value`` a member, as far as the factors say.

        The product of the factors' entry scales on the split (either sign), each factor
        without its own falling back to its projection's scale: what a nested product needs
        to offer its floors to the scale search of the product around it.
        """
        first, second = self._split(value)
        rest = self._rest()
        tiny = torch.finfo(value.dtype).tiny
        best = torch.full_like(first[..., :1, :1], math.inf)
        for sign in (1.0, -1.0):
            f, g = sign * first, sign * second
            by_f = _dot(self.factors[0]._project(f), f) / _dot(f, f).clamp_min(tiny)
            by_g = _dot(rest._project(g), g) / _dot(g, g).clamp_min(tiny)
            scale = _entry_scale(self.factors[0], f, by_f) * _entry_scale(rest, g, by_g)
            best = torch.minimum(best, torch.where(torch.isfinite(scale), scale, math.inf))
        return best

    def _pairs(self, value: Tensor) -> tuple[Tensor, Tensor]:
        """Candidate factor pairs whose product may be ``value``, stacked in front.

        For each sign ``s``, ``(c s A₀, s B₀ / c)`` for the scales ``c`` of ``(s A₀, s B₀)``;
        and two pairs for a zero product (a member when either set holds zero): a member of
        the first set with zero, and zero with a member of the second.
        """
        first, second = self._split(value)
        rest = self._rest()
        firsts, seconds = [], []
        for sign in (1.0, -1.0):
            scales = self._scales(sign * first, sign * second)
            firsts.append(scales * (sign * first))
            seconds.append((sign * second) / scales)
        some_first = self.factors[0]._project(_eye_like(first))
        some_second = rest._project(_eye_like(second))
        firsts.append(torch.stack([some_first, 0 * first]))
        seconds.append(torch.stack([0 * second, some_second]))
        return torch.cat(firsts), torch.cat(seconds)

    def _members(self, value: Tensor, atol: float, rtol: float) -> tuple[Tensor, Tensor, Tensor]:
        """Per candidate pair: projected onto the factors' sets, is its product ``value``?

        The factors are projected first: the split carries rounding of the size of the whole
        product, which an entrywise test of a factor (a zero triangle, say) would not forgive.
        The split and the factors are computed in float64 (the factors in float32 would add
        two round trips' rounding to one).
        """
        value = value.to(torch.float64)
        firsts, seconds = self._pairs(value)
        rest = self._rest()
        firsts, seconds = self.factors[0]._project(firsts), rest._project(seconds)
        ok = self.factors[0]._contains(firsts, atol, rtol) & rest._contains(seconds, atol, rtol)
        # The split's rounding is relative to the whole product, not to each entry.
        error = (kron_dense(firsts, seconds) - value).abs()
        scale = value.abs().amax((-2, -1), keepdim=True)
        near = (error <= atol + rtol * scale).flatten(-2).all(-1)
        return ok & near, firsts, seconds

    def _contains(self, value: Tensor, atol: float, rtol: float) -> Tensor:
        return self._members(value, atol, rtol)[0].any(0)

    def _pick(self, ok: Tensor, options: Tensor) -> Tensor:
        """Per batch element, the first option whose ``ok`` is True (the first if none is)."""
        index = torch.where(ok.any(0), ok.to(torch.uint8).argmax(0), 0)
        index = index.reshape(1, *index.shape, 1, 1).expand(1, *options.shape[1:])
        return options.gather(0, index)[0]

    def _inverse(self, value: Tensor) -> tuple[Any, ...]:
        atol, rtol = default_tolerances(value.dtype)
        ok, firsts, seconds = self._members(value, atol, rtol)
        first, second = self._pick(ok, firsts), self._pick(ok, seconds)
        rest = self._rest()
        second_raw = rest._inverse(second)
        tail = second_raw if len(self.factors) > 2 else (second_raw,)
        raw = (self.factors[0]._inverse(first), *tail)
        return tuple(map_raw(lambda t: t.to(value.dtype), part) for part in raw)

    def _project(self, value: Tensor) -> Tensor:
        dtype, value = value.dtype, value.to(torch.float64)
        firsts, seconds = self._pairs(value)
        rest = self._rest()
        products = kron_dense(self.factors[0]._project(firsts), rest._project(seconds))
        distance = (products - value).square().sum((-2, -1))
        distance = torch.where(torch.isfinite(distance), distance, math.inf)
        best = distance.argmin(0)
        index = best.reshape(1, *best.shape, 1, 1).expand(1, *products.shape[1:])
        return products.gather(0, index)[0].to(dtype)

    def _init(self, shape, generator, dtype, device) -> tuple[Any, ...]:
        batch = tuple(shape[:-2])
        return tuple(
            f.init((*batch, *size), generator=generator, dtype=dtype, device=device)
            for f, size in zip(self.factors, self.sizes, strict=True)
        )


def _entry_scale(structure: AbstractStructure[Any], value: Tensor, fallback: Tensor) -> Tensor:
    """The least ``c > 0`` with ``c * value`` a member, where the structure says; else ``fallback``.

    A structure whose set is closed under scaling up but not down (a floor on eigenvalues or
    on a diagonal), or holds one scale only (a unit diagonal), may define
    ``_entry_scale(value)``, shape ``(..., 1, 1)``, inf where no scale works; the others are
    scaled by ``fallback``, the scale their projection points to.
    """
    entry = getattr(structure, "_entry_scale", None)
    return fallback if entry is None else entry(value)


def _eye_like(x: Tensor) -> Tensor:
    """Rectangular identities of ``x``'s shape."""
    n, m = x.shape[-2:]
    return torch.eye(n, m, dtype=x.dtype, device=x.device).expand(x.shape)


def _dot(x: Tensor, y: Tensor) -> Tensor:
    return (x * y).sum((-2, -1), keepdim=True)
