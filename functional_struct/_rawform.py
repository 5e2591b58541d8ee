"""The raw form of a structure, as data: the one place that knows a raw may be a tuple.

A structure declares its raw form with ``raw_shape(shape)``: for a value whose core (trailing)
shape is ``shape``, the core shape of the raw, a ``torch.Size`` for one tensor or a (nested)
tuple of them for a factored raw (``LowRank``: ``((m, r), (n, r))``; ``Sum``: one entry per
part). Batch dims lead every tensor of a raw alike. From that declaration alone the base class
checks raws, the structure tree decides which tuple is one leaf, the parametrize bridge flattens
and rebuilds raws, and ``fs.testing`` derives raw shapes and bad-input cases: all through the
helpers here, so no other module tests ``isinstance(raw, tuple)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeAlias

import torch
from torch import Tensor

__all__ = [
    "Raw",
    "RawShape",
    "core_shapes",
    "describe",
    "is_factored",
    "leaves",
    "map_raw",
    "one_tensor",
    "parts_of",
    "unflatten",
]

Raw: TypeAlias = Tensor | tuple["Raw", ...]
"""One tensor, or a (nested) tuple of tensors for a factored structure."""

RawShape: TypeAlias = torch.Size | tuple["RawShape", ...]
"""The core shape(s) of a raw: a ``torch.Size``, or a (nested) tuple of them."""


def is_factored(form: RawShape) -> bool:
    """Whether a raw of this form is a tuple (``torch.Size`` is a tuple too: it is one tensor)."""
    return not isinstance(form, torch.Size)


def one_tensor(form: RawShape, ndim: int) -> torch.Size:
    """The shape of a raw form that is one tensor of ``ndim`` core dims, or a ``ValueError``."""
    if not isinstance(form, torch.Size) or len(form) != ndim:
        raise ValueError(f"takes one tensor of {ndim} core dims as raw, not {form!r}")
    return form


def parts_of(form: RawShape) -> tuple[RawShape, ...]:
    """The parts of a factored raw form (a ``ValueError`` for the form of one tensor)."""
    if isinstance(form, torch.Size):
        raise ValueError("needs a tuple raw, got the form of one tensor")
    return form


def leaves(raw: Any) -> Iterator[Any]:
    """The tensors of a raw in order (one, or those of a nested tuple)."""
    if isinstance(raw, tuple) and not isinstance(raw, torch.Size):
        for part in raw:
            yield from leaves(part)
    else:
        yield raw


def map_raw(fn: Callable[[Tensor], Tensor], raw: Raw) -> Raw:
    """``fn`` on every tensor of a raw, keeping its tuple nesting."""
    if isinstance(raw, tuple):
        return tuple(map_raw(fn, part) for part in raw)
    return fn(raw)


def unflatten(form: RawShape, tensors: list[Tensor]) -> Raw:
    """Rebuild a raw of this form from its tensors in order (``leaves``' inverse)."""
    it = iter(tensors)

    def build(f: RawShape) -> Raw:
        if isinstance(f, torch.Size):
            return next(it)
        return tuple(build(part) for part in f)

    raw = build(form)
    if next(it, None) is not None:
        raise ValueError(f"raw form {describe(form)} takes fewer tensors than {len(tensors)}.")
    return raw


def count(form: RawShape) -> int:
    """How many tensors a raw of this form has."""
    return 1 if isinstance(form, torch.Size) else sum(count(part) for part in form)


def describe(form: RawShape) -> str:
    """A raw form in words, for error messages: ``"a tensor"``, ``"a tuple of 2 tensors"``."""
    if isinstance(form, torch.Size):
        return "a tensor"
    names = getattr(form, "_fields", None)
    if names is not None:
        return f"a tuple ({', '.join(names)})"
    return f"a tuple of {len(form)} raws, one per part"


def core_shapes(raw: Any, form: RawShape) -> tuple[RawShape, list[tuple[int, ...]]]:
    """The core shape(s) of ``raw`` read against ``form``, and every tensor's batch shape.

    Only the nesting and the number of core dims of ``form`` are used, not its sizes.

    Raises:
      TypeError: ``raw`` is not nested as ``form`` is, or holds something other than tensors.
      ValueError: a tensor has fewer dims than its part's core.
    """
    batches: list[tuple[int, ...]] = []

    def where(path: tuple[str, ...]) -> str:  # only on failure: no formatting on the way
        return " ".join(("raw", *(f"part {p}" for p in path)))

    def read(x: Any, f: RawShape, path: tuple[str, ...]) -> RawShape:
        if isinstance(f, torch.Size):
            if not isinstance(x, Tensor):
                raise TypeError(f"{where(path)} must be a torch.Tensor, got {type(x).__name__}")
            n = len(f)
            if x.dim() < n:
                kind = {1: "a vector", 2: "a matrix"}.get(n, f"{n} dims")
                plural = "s" if n > 1 else ""
                raise ValueError(
                    f"{where(path)} needs {kind} in its last {n} dim{plural}, "
                    f"got shape {tuple(x.shape)}"
                )
            batches.append(tuple(x.shape[: x.dim() - n]))
            return x.shape[x.dim() - n :]
        if not isinstance(x, tuple) or len(x) != len(f):
            got = f"a tuple of {len(x)}" if isinstance(x, tuple) else type(x).__name__
            raise TypeError(f"{where(path)} must be {describe(f)}, got {got}")
        names = getattr(f, "_fields", None)
        return tuple(
            read(xi, fi, (*path, repr(names[i]) if names else str(i)))
            for i, (xi, fi) in enumerate(zip(x, f, strict=True))
        )

    return read(raw, form, ()), batches
