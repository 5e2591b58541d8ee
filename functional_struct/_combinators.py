"""Structures built from structures: ``Chain`` (composition), ``Sum`` and ``Frozen``."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import Tensor

from ._structure import AbstractStructure
from ._tree import _broadcast_copy

__all__ = ["Chain", "Frozen", "Sum"]


class _Composite(AbstractStructure):
    """What a structure made of parts (``structures``) shares: its core, dtypes and shape checks.

    The core has as many dims as the largest part's, the dtypes are those every part accepts,
    it is square if any part is, and a core shape must suit every part.
    """

    structures: tuple[AbstractStructure, ...]

    @property
    def core_ndim(self) -> int:  # type: ignore[override]  # noqa: D102 - documented on the base
        return max(part.core_ndim for part in self.structures)

    @property
    def dtypes(self) -> tuple[torch.dtype, ...]:  # type: ignore[override]  # noqa: D102
        common = set.intersection(*(set(part.dtypes) for part in self.structures))
        return tuple(d for d in self.structures[0].dtypes if d in common)

    @property
    def square(self) -> bool:  # type: ignore[override]  # noqa: D102
        return any(part.square for part in self.structures)

    def _check_core_shape(self, core: tuple[int, ...]) -> str | None:
        for part in self.structures:
            problem = part._check_core_shape(core[len(core) - part.core_ndim :])
            if problem is not None:
                return f"({type(part).__name__}) {problem}"
        return None


@dataclasses.dataclass(frozen=True, init=False)
class Chain(_Composite):
    """Apply structures left to right: ``Chain(a, b).apply(raw) == b.apply(a.apply(raw))``.

    The set is the image of the composition, for example ``Chain(Positive(), Diagonal())`` is
    the diagonal matrices with positive diagonal. ``inverse`` runs the parts' inverses right to
    left. ``contains(v)`` asks the last part and checks that ``apply(inverse(v)) ≈ v`` (exact,
    given that every part's inverse is a right inverse). ``project(v)`` is
    ``apply(inverse(last.project(v)))``: exact when the parts act on separate entries, as in
    the example; otherwise a member near ``v``, not always the nearest.

    Args:
      *structures: the parts, at least one.

    Example:
      >>> c = fs.Chain(fs.Positive(), fs.Diagonal())
      >>> c.apply(torch.tensor([[0.0, 5.0], [5.0, 1.0]]))
      tensor([[0.6931, 0.0000],
              [0.0000, 1.3133]])
      >>> c.project(torch.tensor([[2.0, 1.0], [1.0, -3.0]])).round(decimals=4)
      tensor([[2., 0.],
              [0., 0.]])
    """

    structures: tuple[AbstractStructure, ...]

    def __init__(self, *structures: AbstractStructure) -> None:
        _check_parts("Chain", structures)
        object.__setattr__(self, "structures", tuple(structures))

    def __repr__(self) -> str:
        return f"Chain({', '.join(map(repr, self.structures))})"

    @property
    def raw_names(self) -> tuple[str, ...] | None:  # type: ignore[override]  # noqa: D102
        return self.structures[0].raw_names

    def _check_raw(self, raw: Any, method: str) -> None:
        if self.structures[0].raw_names is not None:  # factored: the first part's raw
            self.structures[0]._check_raw(raw, method)
        else:
            super()._check_raw(raw, method)

    @property
    def raw_core_ndim(self) -> int:  # noqa: D102 - documented on the base
        first = self.structures[0]
        if first.raw_core_ndim != first.core_ndim:  # packed: later parts see first's output
            return first.raw_core_ndim
        return max(part.core_ndim for part in self.structures)

    def _check_raw_core_shape(self, core: tuple[int, ...]) -> str | None:
        first = self.structures[0]
        if first.raw_core_ndim != first.core_ndim:
            return first._check_raw_core_shape(core)
        return self._check_core_shape(core)

    def _apply(self, raw: Tensor) -> Tensor:
        for part in self.structures:
            raw = part.apply(raw)
        return raw

    def _inverse(self, value: Tensor) -> Tensor:
        for part in reversed(self.structures):
            value = part.inverse(value)
        return value

    def _contains(self, value: Tensor, atol: float, rtol: float) -> Tensor:
        last = self.structures[-1].contains(value, atol, rtol)
        last = last.reshape(last.shape[: value.dim() - self.core_ndim] + (-1,)).all(-1)
        back = self._apply(self._inverse(value))
        ok = (back - value).abs() <= atol + rtol * value.abs()
        return last & self._all_core(ok)

    def _project(self, value: Tensor) -> Tensor:
        return self._apply(self._inverse(self.structures[-1].project(value)))

    def _init(self, shape, generator, dtype, device) -> Tensor:
        return self.structures[0].init(shape, generator=generator, dtype=dtype, device=device)


def _check_parts(owner: str, structures: tuple[Any, ...]) -> None:
    if not structures:
        raise ValueError(f"{owner}: needs at least one structure, got none.")
    for i, part in enumerate(structures):
        if not isinstance(part, AbstractStructure):
            raise TypeError(
                f"{owner}: part {i} must be a structure (such as fs.Positive()), "
                f"got {type(part).__name__}: {part!r}."
            )


@dataclasses.dataclass(frozen=True, init=False)
class Sum(_Composite):
    """The sum of members of several structures: ``Sum(a, b).apply((ra, rb)) = a(ra) + b(rb)``.

    The raw is the tuple of the parts' raws (each part's own form: a tensor, or a tuple for
    factored parts), so ``Sum(LowRank(2), Chain(Positive(), Diagonal()))`` is the
    low-rank-plus-diagonal covariance of factor analysis and sparse Gaussian processes, at
    ``2n + n`` numbers. ``inverse`` and ``project`` split a matrix into the parts by
    ``iterations`` rounds of block coordinate descent (each part in turn takes the projection
    of what the others leave). That is exact for parts on complementary subspaces (one round:
    ``Sum(Symmetric(), SkewSymmetric())``); for non-convex parts it can stop at a local optimum:
    for ``LowRank(1)`` plus a positive diagonal, measured at n = 4, about 1 in 6 random members
    is not split back to 1e-6 (``inverse`` then gives a nearby member, and ``contains`` says
    False). ``contains(v)`` checks that the split adds up to ``v``.

    Args:
      *structures: the parts, at least one, all giving the same shape.
      iterations: rounds of block coordinate descent in ``inverse`` and ``project``.

    Example:
      >>> s = fs.Sum(fs.LowRank(1), fs.Chain(fs.Positive(), fs.Diagonal()))
      >>> raw = ((torch.ones(2, 1), torch.ones(2, 1)), torch.zeros(2, 2))
      >>> s.apply(raw)
      tensor([[1.6931, 1.0000],
              [1.0000, 1.6931]])
    """

    structures: tuple[AbstractStructure, ...]
    iterations: int

    def __init__(self, *structures: AbstractStructure, iterations: int = 200) -> None:
        _check_parts("Sum", structures)
        if not isinstance(iterations, int) or isinstance(iterations, bool) or iterations < 1:
            raise ValueError(f"Sum: iterations must be an int >= 1, got {iterations!r}.")
        object.__setattr__(self, "structures", tuple(structures))
        object.__setattr__(self, "iterations", iterations)

    def __repr__(self) -> str:
        return f"Sum({', '.join(map(repr, self.structures))})"

    @property
    def raw_names(self) -> tuple[str, ...]:  # type: ignore[override]  # noqa: D102
        return tuple(f"{i} ({type(part).__name__})" for i, part in enumerate(self.structures))

    def _check_raw(self, raw: Any, method: str) -> None:
        if not isinstance(raw, tuple) or len(raw) != len(self.structures):
            got = f"a tuple of {len(raw)}" if isinstance(raw, tuple) else type(raw).__name__
            raise self._fail(
                method,
                f"raw must be a tuple of {len(self.structures)} raws, one per part, got {got}.",
                TypeError,
            )
        for i, (part, part_raw) in enumerate(zip(self.structures, raw, strict=True)):
            try:
                part._check_raw(part_raw, method)
            except (ValueError, TypeError) as error:
                raise type(error)(f"{self!r}.{method}: raw part {i}: {error}") from None

    def _apply(self, raw: tuple[Any, ...]) -> Tensor:
        values = [part._apply(r) for part, r in zip(self.structures, raw, strict=True)]
        shapes = {tuple(v.shape) for v in values}
        if len(shapes) > 1:
            got = ", ".join(str(tuple(v.shape)) for v in values)
            raise self._fail("apply", f"the parts' values must have one shape, got {got}.")
        return sum(values[1:], values[0])

    def _split(self, value: Tensor) -> list[Tensor]:
        """Members of the parts that add up to (nearly) ``value``: block coordinate descent."""
        members = [part.project(torch.zeros_like(value)) for part in self.structures]
        for _ in range(self.iterations):
            for i, part in enumerate(self.structures):
                others = sum((m for j, m in enumerate(members) if j != i), torch.zeros_like(value))
                members[i] = part.project(value - others)
        return members

    def _inverse(self, value: Tensor) -> tuple[Any, ...]:
        members = self._split(value)
        return tuple(part.inverse(m) for part, m in zip(self.structures, members, strict=True))

    def _contains(self, value: Tensor, atol: float, rtol: float) -> Tensor:
        # The split's rounding is relative to the whole matrix, not to each entry: a float32
        # Symmetric + SkewSymmetric member of entries near 3e4 missed by 2e-3 on a small entry.
        back = sum(self._split(value))
        dims = tuple(range(-self.core_ndim, 0))
        scale = value.abs().amax(dims, keepdim=True) if dims else value.abs()
        return self._all_core((back - value).abs() <= atol + rtol * scale)

    def _project(self, value: Tensor) -> Tensor:
        return sum(self._split(value))

    def _init(self, shape, generator, dtype, device) -> tuple[Any, ...]:
        return tuple(
            part.init(shape, generator=generator, dtype=dtype, device=device)
            for part in self.structures
        )


@dataclasses.dataclass(frozen=True)
class Frozen(AbstractStructure):
    """Any tensor, with no gradient reaching the raw leaf: for parameters that must not train.

    ``apply`` is ``raw.detach()``, so ``grad``, ``jacfwd`` and optimizers see a zero gradient
    while the value passes through. In a structure tree, ``init`` copies the example tensor
    (a frozen parameter keeps its value) instead of drawing a random one.

    Example:
      >>> g = torch.func.grad(lambda r: fs.Frozen().apply(r).sum())(torch.ones(2))
      >>> g
      tensor([0., 0.])
    """

    core_ndim = 0
    inverse_outside = "project"

    def _apply(self, raw: Tensor) -> Tensor:
        return raw.detach()

    def _inverse(self, value: Tensor) -> Tensor:
        return value.clone()

    def _contains(self, value: Tensor, atol: float, rtol: float) -> Tensor:
        return torch.ones_like(value, dtype=torch.bool)

    def _project(self, value: Tensor) -> Tensor:
        return value.clone()

    def _init(self, shape, generator, dtype, device) -> Tensor:
        return torch.randn(shape, generator=generator, dtype=dtype, device=device)

    def _init_like(self, like: Tensor, batch_shape: tuple[int, ...], generator: Any) -> Tensor:
        return _broadcast_copy(like, batch_shape)
