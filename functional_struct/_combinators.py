"""Structures built from structures: ``Chain`` (composition), ``Sum`` and ``Frozen``."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import Tensor

from ._elementwise import Positive
from ._kernels import abs_squared
from ._rank import LowRank
from ._rawform import RawShape, is_factored, leaves, map_raw, parts_of
from ._structure import SUBSPACE_DTYPES, AbstractStructure, raw_form_of
from ._subspaces import Circulant, Hankel, Symmetric, Toeplitz
from ._triangular import _AbstractBand, _AbstractFixedMask
from ._validate import check_int, invalid
from .linalg import operators as ops

__all__ = ["Chain", "Frozen", "Sum"]


class _Composite(AbstractStructure[Any]):
    """What a structure made of parts (``structures``) shares: its core, dtypes and shape checks.

    The core has as many dims as the largest part's, the dtypes are those every part accepts,
    it is square if any part is, and a core shape must suit every part. A part with fewer core
    dims (an elementwise one) sees the composite's extra core dims as batch dims of its raw.
    """

    structures: tuple[AbstractStructure[Any], ...]

    @property
    def core_ndim(self) -> int:  # noqa: D102 - documented on the base
        return max(part.core_ndim for part in self.structures)

    @property
    def dtypes(self) -> tuple[torch.dtype, ...]:  # noqa: D102 - documented on the base
        common = set.intersection(*(set(part.dtypes) for part in self.structures))
        return tuple(d for d in self.structures[0].dtypes if d in common)

    @property
    def square(self) -> bool:  # noqa: D102 - documented on the base
        return any(part.square for part in self.structures)

    def _part_raw_shape(self, part: AbstractStructure[Any], shape: tuple[int, ...]) -> RawShape:
        """``part``'s raw shape for a value of the composite's core ``shape``."""
        cut = len(shape) - part.core_ndim
        return _prepend(tuple(shape[:cut]), part.raw_shape(tuple(shape[cut:])))

    def _part_value_shape(self, part: AbstractStructure[Any], raw_shape: RawShape) -> torch.Size:
        """The composite's core value shape that ``part``'s raw of shape ``raw_shape`` gives."""
        extra = self.core_ndim - part.core_ndim
        # Compared pairwise, never collected in a set: hashing sizes would make a dynamic-shape
        # compile specialize on each one.
        heads = [tuple(leaf[:extra]) for leaf in leaves(raw_shape)]
        if any(head != heads[0] for head in heads[1:]):
            raise ValueError(f"({type(part).__name__}) raw parts disagree in their leading dims")
        stripped = _map_form(lambda leaf: torch.Size(leaf[extra:]), raw_shape)
        try:
            value = part.value_shape(stripped)
        except ValueError as problem:
            raise ValueError(f"({type(part).__name__}) {problem}") from None
        return torch.Size((*heads[0], *value))


def _prepend(head: tuple[int, ...], form: RawShape) -> RawShape:
    return _map_form(lambda leaf: torch.Size((*head, *leaf)), form)


def _map_form(fn: Any, form: RawShape) -> RawShape:
    """``fn`` on every shape of a raw form, keeping its nesting (and the names of its parts)."""
    if isinstance(form, torch.Size):
        return fn(form)
    parts: list[RawShape] = [_map_form(fn, part) for part in parts_of(form)]
    named: Any = type(form)  # a NamedTuple of shapes is rebuilt by its fields
    return named(*parts) if hasattr(form, "_fields") else tuple(parts)


@dataclasses.dataclass(frozen=True, init=False)
class Chain(_Composite):
    """Apply structures left to right: ``Chain(a, b).apply(raw) == b.apply(a.apply(raw))``.

    The set is the image of the composition, for example ``Chain(Positive(), Diagonal())`` is
    the diagonal matrices with positive diagonal. ``inverse`` runs the parts' inverses right to
    left; ``contains(v)`` asks the last part and checks that ``apply(inverse(v)) ≈ v``;
    ``project(v)`` is ``apply(inverse(last.project(v)))``: exact when the parts act on
    separate entries, as in the example; otherwise a member near ``v``, not always the nearest.

    That round trip decides membership only when each later part's ``inverse`` of a member
    lands in the image of the parts before it, so the parts after the first are limited to

    - elementwise structures (``Positive``, ``Bounded``, ``Frozen``), whose inverse is the one
      preimage, and
    - after elementwise parts only: masks (``UpperTriangular``, ``Diagonal``, ``Banded``,
      ``BlockDiagonal``, ``Masked``, ...) and the averaging subspaces ``Symmetric``,
      ``Toeplitz``, ``Hankel``, ``Circulant``, full or packed (they map an elementwise set
      onto its own members; packed, the chain's raw is their coordinates:
      ``Chain(Positive(), Diagonal(packed=True))`` takes the ``n`` diagonal entries).

    and every part before the last must be one whose inverse projects (``inverse_outside ==
    "project"``: masks, subspaces, ``Positive``, ``CholeskyFactor``, ...), so that ``project``
    lands in the set. Anything else (``Simplex``, a factored later part, a subspace
    after a matrix structure, ``SkewSymmetric``, any part after ``Orthogonal`` or
    ``PositiveDefinite``) raises a ``ValueError`` at construction.

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
        _check_parts(self, structures)
        _check_chain(self, structures)
        object.__setattr__(self, "structures", tuple(structures))

    def __repr__(self) -> str:
        return f"Chain({', '.join(map(repr, self.structures))})"

    def _inner_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The shape the first part's value has: the later parts' raws, from the last back."""
        inner: Any = tuple(shape)
        for part in reversed(self.structures[1:]):
            inner = tuple(self._part_raw_shape(part, inner))
        return inner

    def raw_shape(self, shape: tuple[int, ...]) -> RawShape:
        """The first part's raw, for a value that is the later parts' raws in turn.

        ``Chain(Positive(), Diagonal(packed=True))`` takes the ``n`` diagonal entries.
        """
        return self._part_raw_shape(self.structures[0], self._inner_shape(shape))

    def value_shape(self, raw_shape: RawShape) -> torch.Size:
        """Each part's value shape in turn, every part checking its raw."""
        value = self._part_value_shape(self.structures[0], raw_shape)
        for part in self.structures[1:]:
            value = self._part_value_shape(part, value)
        return value

    def _apply(self, raw: Any) -> Tensor:
        value = self.structures[0].apply(raw)
        for part in self.structures[1:]:
            value = part.apply(value)
        return value

    def _operator(self, raw: Any) -> ops.Operator:
        value = raw
        for part in self.structures[:-1]:
            value = part.apply(value)
        operator = self.structures[-1]._operator(value)
        if isinstance(operator, ops.Diagonal) and all(
            isinstance(part, Positive) and part.min >= 0 for part in self.structures[:-1]
        ):  # a diagonal of positive entries: rules may use a Cholesky factorization
            operator = ops.Diagonal(operator.d, positive=True)
        return operator

    def supports(self, name: str) -> bool:
        """Capabilities that pass through the parts.

        ``linalg`` when the last part has it (its rules run); ``log_det`` when every part has
        it and every part but the last is elementwise (``_refusal``).
        """
        if name == "linalg":
            return self.structures[-1].supports(name)
        return super().supports(name)

    def _refusal(self, name: str) -> str | None:
        if name != "log_det":
            return super()._refusal(name)
        for i, part in enumerate(self.structures):
            if not part.supports("log_det"):
                return f"part {i}, {part!r}, has none: {part._reason('log_det')}"
            if i < len(self.structures) - 1 and part.core_ndim != 0:
                return (
                    f"part {i}, {part!r}, is not elementwise, so its value's entries are not "
                    "the free coordinates the next part reads"
                )
        return None

    def _forward_and_log_det(self, raw: Any) -> tuple[Tensor, Tensor]:
        """The parts' log-dets summed (chain rule), each over the entries it maps."""
        value, log_dets = raw, []
        for part in self.structures:
            value, log_det = part._forward_and_log_det(value)
            log_dets.append(log_det)
        batch = value.dim() - self.core_ndim
        total = log_dets[-1]
        for log_det in log_dets[:-1]:  # an elementwise part's: one per entry it mapped
            total = total + (log_det.flatten(batch).sum(-1) if log_det.dim() > batch else log_det)
        return value, total

    def _log_det_coordinates(self, value: Tensor, tangent: Tensor) -> Tensor:
        return self.structures[-1]._log_det_coordinates(value, tangent)

    def _inverse(self, value: Tensor) -> Any:
        raw: Any = value
        for part in reversed(self.structures):
            raw = part.inverse(raw)
        return raw

    def _contains(self, value: Tensor, atol: float, rtol: float) -> Tensor:
        last = self.structures[-1].contains(value, atol, rtol)
        extra = self.core_ndim - self.structures[-1].core_ndim
        if extra:  # the last part is elementwise: reduce its answer over the chain's core
            last = last.flatten(last.dim() - extra).all(-1)
        back = self._apply(self._inverse(value))
        ok = (back - value).abs() <= atol + rtol * value.abs()
        return last & self._all_core(ok)

    def _project(self, value: Tensor) -> Tensor:
        return self._apply(self._inverse(self.structures[-1].project(value)))

    def _init(self, shape, generator, dtype, device) -> Any:
        cut = len(shape) - self.core_ndim  # batch dims, then the value's core
        inner = self._inner_shape(tuple(shape[cut:]))
        return self.structures[0].init(
            (*shape[:cut], *inner), generator=generator, dtype=dtype, device=device
        )

    def init_like(self, value: Tensor, *, generator: torch.Generator | None = None) -> Any:
        """A chain that starts with ``Frozen`` keeps the value: the nearest member's raw."""
        if isinstance(self.structures[0], Frozen):
            self._check_value(value, "init_like", "value")
            return self.raw_from(value)
        return super().init_like(value, generator=generator)


def _check_parts(owner: AbstractStructure, structures: tuple[Any, ...]) -> None:
    if not structures:
        raise invalid(owner, "structures", "one or more structures", structures)
    for i, part in enumerate(structures):
        if not isinstance(part, AbstractStructure):
            expected = "a structure (such as fs.Positive())"
            raise invalid(owner, f"structures[{i}]", expected, part, TypeError)


# Full-form linear structures that map an elementwise set (an interval for every entry) onto
# members of that set: masks zero entries (which the round trip then ignores), and these
# subspaces average entries with sign +1. SkewSymmetric's -1 signs do not (Positive then
# SkewSymmetric is every skew matrix, whose negative entries Positive.inverse clamps).
_AVERAGING = (_AbstractBand, _AbstractFixedMask, Symmetric, Toeplitz, Hankel, Circulant)


def _check_chain(owner: AbstractStructure, structures: tuple[AbstractStructure, ...]) -> None:
    for i, part in enumerate(structures[1:], start=1):
        name = repr(part)
        exact = [e for e in structures[:i] if e.inverse_outside != "project"]
        if exact:
            problem = (
                f"({name}) follows {exact[0]!r}, whose inverse is NaN outside its set, so "
                "project would give NaN for most values; a part before the last must be one "
                "whose inverse projects (inverse_outside = 'project')"
            )
        elif is_factored(raw_form_of(part)):
            problem = f"is factored ({name} takes a tuple raw), but it receives a tensor"
        elif part.core_ndim == 0:
            continue  # elementwise: its inverse is the one preimage
        elif not isinstance(part, _AVERAGING):
            problem = (
                f"({name}) is neither elementwise nor a mask or averaging subspace: its "
                "inverse can pick a preimage outside the earlier parts' image, so "
                "contains would be False for members"
            )
        elif any(earlier.core_ndim != 0 for earlier in structures[:i]):
            problem = (
                f"({name}) follows a matrix structure: the round trip through its inverse "
                "(the identity) need not stay in that structure's image; a subspace may "
                "follow elementwise parts only"
            )
        else:
            continue
        raise ValueError(
            f"{type(owner).__name__}: "
            f"structures[{i}] {problem}. Later parts must be elementwise (Positive, Bounded, "
            "Frozen) or, after elementwise parts only, a mask, Symmetric, Toeplitz, "
            "Hankel or Circulant."
        )


def _is_frozen_sum(structures: tuple[AbstractStructure, ...]) -> bool:
    return any(isinstance(part, Frozen) for part in structures)


def _check_sum(owner: AbstractStructure, structures: tuple[AbstractStructure, ...]) -> None:
    if _is_frozen_sum(structures):
        return
    odd = [part for part in structures if not part.linear]
    if odd:
        raise ValueError(
            f"{type(owner).__name__}: structures must be parts it can split (and so invert, "
            "project and decide membership): parts that "
            "are all linear subspaces (masks, Symmetric, SkewSymmetric, "
            "Toeplitz, Hankel, Circulant), or sums with a Frozen() part (LoRA: the set is "
            f"everything), got non-linear {', '.join(map(repr, odd))}. A sum with a non-linear "
            "part cannot be split reliably (for LowRank plus a positive diagonal that is "
            "factor analysis; block coordinate descent missed 12-100% of members), so its "
            "contains and inverse would be wrong. For training with apply only, add the "
            "parts' apply yourself, for example "
            "a.apply(raw[0]) + b.apply(raw[1])."
        )


@dataclasses.dataclass(frozen=True, init=False)
class Sum(_Composite):
    """The sum of members of several structures: ``Sum(a, b).apply((ra, rb)) = a(ra) + b(rb)``.

    The raw is the tuple of the parts' raws (each part's own form). ``Sum`` accepts two kinds
    of parts, the ones whose sum it can split exactly (others raise a ``ValueError``):

    - **linear subspaces** (structures whose ``linear`` is True: masks, ``Symmetric``,
      ``SkewSymmetric``, ``Toeplitz``, ``Hankel``, ``Circulant``, full or packed). The set is
      the sum of the subspaces; ``project`` is the orthogonal projection onto it, found by
      ``iterations`` steps of conjugate gradients on the least-squares split (in float64;
      measured to converge to 1e-13 within 200 steps for every pair of these up to 64 x 64,
      Circulant plus a triangle being the slowest); ``inverse`` gives each part its share of
      that split; ``contains(v)`` checks that the projection is ``v`` at the scale of the
      matrix's largest entry.
    - **a** ``Frozen()`` **part** with any others, such as ``Sum(Frozen(), LowRank(4))`` for
      LoRA: the set is every tensor. ``inverse`` puts the others at a rest point (zero, with
      a ``LowRank`` raw of ``left = 0`` and unit ``right`` columns, so its gradient is not
      zero) and the rest of the value in the ``Frozen`` part; ``project`` is the identity.
      In a structure tree, ``init`` gives the same split of the example tensor, with a
      random ``right`` factor: a LoRA adapter that starts at the pretrained weight.

    A low-rank-plus-diagonal covariance is not a ``Sum``: deciding whether a matrix is one is
    factor analysis, with no reliable split. Add ``PositiveSemidefinite(rank=r).apply(f)``
    and ``Chain(Positive(), Diagonal()).apply(d)`` yourself when only ``apply`` is needed.

    Args:
      *structures: the parts, at least one, all giving the same shape.
      iterations: the most conjugate-gradient steps of the linear split (it takes at most
        twice the number of unknowns, ``2 * len(structures) * m * n``; ignored for a Frozen
        sum).

    Example:
      >>> s = fs.Sum(fs.Diagonal(), fs.SkewSymmetric())
      >>> s.project(torch.tensor([[1.0, 2.0], [0.0, 3.0]]))
      tensor([[ 1.,  1.],
              [-1.,  3.]])
      >>> lora = fs.Sum(fs.Frozen(), fs.LowRank(1))
      >>> weight, (left, right) = lora.raw_from(torch.ones(2, 2))
      >>> left.abs().sum().item(), right.abs().sum().item()
      (0.0, 1.0)
    """

    _no_log_det = "the parts' raws overlap in what they can add, so a value has many raws"

    structures: tuple[AbstractStructure, ...]
    iterations: int

    inverse_outside = "project"  # inverse is the split whose sum is project(value)

    def __init__(self, *structures: AbstractStructure, iterations: int = 200) -> None:
        _check_parts(self, structures)
        check_int(self, "iterations", iterations, minimum=1)
        _check_sum(self, structures)
        object.__setattr__(self, "structures", tuple(structures))
        object.__setattr__(self, "iterations", iterations)

    def __repr__(self) -> str:
        parts = ", ".join(map(repr, self.structures))
        return f"Sum({parts}, iterations={self.iterations})"

    def raw_shape(self, shape: tuple[int, ...]) -> RawShape:
        """The tuple of the parts' raws, one per part."""
        return tuple(self._part_raw_shape(part, shape) for part in self.structures)

    def value_shape(self, raw_shape: RawShape) -> torch.Size:
        """The value shape every part's raw stands for (they must agree)."""
        values = [
            self._part_value_shape(part, form)
            for part, form in zip(self.structures, parts_of(raw_shape), strict=True)
        ]
        if any(v != values[0] for v in values[1:]):
            got = ", ".join(str(tuple(v)) for v in values)
            raise ValueError(f"parts' values must have one shape, got {got}")
        return values[0]

    def _apply(self, raw: tuple[Any, ...]) -> Tensor:
        values = [part._apply(r) for part, r in zip(self.structures, raw, strict=True)]
        return sum(values[1:], values[0])

    def _operator(self, raw: tuple[Any, ...]) -> ops.Operator:
        return ops.Sum([part._operator(r) for part, r in zip(self.structures, raw, strict=True)])

    # ------------------------------------------------------------------------ the split
    def _split(self, value: Tensor) -> list[Any]:
        """Per part, a member (linear sums) or a raw (Frozen sums) adding up to the split."""
        if _is_frozen_sum(self.structures):
            return self._frozen_split(value)
        return self._linear_split(value)

    def _linear_split(self, value: Tensor) -> list[Tensor]:
        """Members of the subspaces whose sum is the orthogonal projection of ``value``.

        Conjugate gradients on ``min |v - sum x_i|²`` over ``x_i`` in subspace ``i``, whose
        normal operator is ``x -> (P_i(sum x))_i``; in float64, on ``value`` scaled to largest
        entry 1 (so 1e30 or 1e-30 entries split alike). A step stops a batch element once its
        residual is 1e-14 of where it started, which keeps converged ones from drifting.
        """
        parts = self.structures
        dims = tuple(range(-self.core_ndim, 0))
        scale = value.abs().amax(dims, keepdim=True)
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        v = (value / scale).to(torch.complex128 if value.is_complex() else torch.float64)
        members = [torch.zeros_like(v) for _ in parts]
        residual = [part._project(v) for part in parts]
        direction = list(residual)
        rr = sum(_dot(r, dims) for r in residual)
        start = rr
        # In exact arithmetic CG ends within as many steps as there are unknowns; twice that
        # leaves room for rounding, and keeps small matrices from paying for ``iterations``.
        unknowns = len(parts) * value.shape[-2:].numel()
        for _ in range(min(self.iterations, 2 * unknowns)):
            total = sum(direction[1:], direction[0])
            image = [part._project(total) for part in parts]
            curvature = _dot(total, dims)
            active = (rr > 1e-28 * start) & (curvature > 1e-30 * start)
            alpha = torch.where(active, rr / torch.where(active, curvature, 1.0), 0.0)
            members = [m + alpha * d for m, d in zip(members, direction, strict=True)]
            residual = [r - alpha * a for r, a in zip(residual, image, strict=True)]
            new = sum(_dot(r, dims) for r in residual)
            beta = torch.where(active, new / torch.where(active, rr, 1.0), 0.0)
            direction = [r + beta * d for r, d in zip(residual, direction, strict=True)]
            rr = torch.where(active, new, rr)
        return [(m * scale).to(value.dtype) for m in members]

    def _frozen_split(self, value: Tensor) -> list[Any]:
        """Raws: the non-Frozen parts at rest, the first Frozen part takes what is left."""
        raws: list[Any] = []
        left = value
        for part in self.structures:
            if isinstance(part, Frozen):
                raws.append(None)
                continue
            raw = _rest_raw(part, value)
            raws.append(raw)
            left = left - part.apply(raw)
        first = next(i for i, part in enumerate(self.structures) if isinstance(part, Frozen))
        return [
            (left if i == first else torch.zeros_like(value)) if raw is None else raw
            for i, raw in enumerate(raws)
        ]

    def _inverse(self, value: Tensor) -> tuple[Any, ...]:
        split = self._split(value)
        if _is_frozen_sum(self.structures):
            return tuple(split)
        return tuple(part.inverse(m) for part, m in zip(self.structures, split, strict=True))

    def _contains(self, value: Tensor, atol: float, rtol: float) -> Tensor:
        if _is_frozen_sum(self.structures):  # every tensor (the base rejects NaN and Inf)
            return self._all_core(torch.ones_like(value, dtype=torch.bool))
        # The split's rounding is relative to the whole matrix, not to each entry: a float32
        # Symmetric + SkewSymmetric member of entries near 3e4 missed by 2e-3 on a small entry.
        back = self._project(value)
        dims = tuple(range(-self.core_ndim, 0))
        scale = value.abs().amax(dims, keepdim=True) if dims else value.abs()
        return self._all_core((back - value).abs() <= atol + rtol * scale)

    def _project(self, value: Tensor) -> Tensor:
        if _is_frozen_sum(self.structures):
            return value.clone()
        members = self._linear_split(value)
        return sum(members[1:], members[0])

    def _init(self, shape, generator, dtype, device) -> tuple[Any, ...]:
        return tuple(
            part.init(shape, generator=generator, dtype=dtype, device=device)
            for part in self.structures
        )

    def init_like(self, value: Tensor, *, generator: torch.Generator | None = None) -> Any:
        """A Frozen sum keeps ``value``: the split of ``raw_from``, random ``LowRank`` right.

        LoRA's start: one factor zero, the other random.
        """
        if not _is_frozen_sum(self.structures):
            return tuple(part.init_like(value, generator=generator) for part in self.structures)
        self._check_value(value, "init_like", "value")
        raws = list(self._frozen_split(value.detach()))
        for i, part in enumerate(self.structures):
            if isinstance(part, LowRank):
                _, right = part.init_like(value, generator=generator)
                raws[i] = (raws[i][0], right)
        return tuple(raws)


def _dot(x: Tensor, dims: tuple[int, ...]) -> Tensor:
    """``‖x‖²`` over ``dims`` (real, for complex ``x`` too: the real inner product)."""
    squares = abs_squared(x)
    return squares.sum(dims, keepdim=True) if dims else squares


def _rest_raw(part: AbstractStructure, value: Tensor) -> Any:
    """A raw of ``part`` whose image is near zero, for the non-Frozen parts of a Frozen sum.

    ``LowRank`` gets ``left = 0`` and ``right`` the first columns of the identity: the image
    is exactly zero, and the gradient with respect to ``left`` is not (both factors zero is
    a saddle with zero gradient). Other parts get ``inverse(project(0))``.
    """
    if isinstance(part, LowRank):
        n, m = value.shape[-2:]
        lead = value.shape[:-2]
        left = value.new_zeros((*lead, n, part.rank))
        right = torch.eye(m, part.rank, dtype=value.dtype, device=value.device)
        return left, right.expand(*lead, m, part.rank).clone()
    zero = torch.zeros(value.shape[value.dim() - part.core_ndim :], dtype=value.dtype)
    rest = part.inverse(part.project(zero.to(value.device)))
    batch = tuple(value.shape[: value.dim() - part.core_ndim])
    return map_raw(lambda t: t.expand(*batch, *t.shape).clone(), rest)


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

    _no_log_det = "it passes a fixed value through and has no free coordinates"

    core_ndim = 0
    inverse_outside = "project"
    dtypes = SUBSPACE_DTYPES

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

    def init_like(self, value: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """A frozen parameter keeps its value: a detached copy of ``value``."""
        self._check_value(value, "init_like", "value")
        return value.detach().clone()
