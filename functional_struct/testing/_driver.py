"""Raw inputs of each kind, and :func:`check_laws`, which draws them and runs every law."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from .._structure import AbstractStructure
from ._laws import (
    LawError,
    _batch_elements,
    _fail,
    _map,
    check_bad_input,
    check_batching,
    check_compile,
    check_derivatives,
    check_inverse,
    check_membership,
    check_outside,
    check_projection,
    check_purity,
    check_raw_form,
)
from ._registry import CAPABILITY_LAWS, LAWS, laws_for


def _fill(x: Tensor, kind: str, magnitude: float, generator: torch.Generator) -> Tensor:
    """A tensor shaped like ``x`` of one kind: normal, zeros, constant or rank-one."""
    if kind == "zeros":
        return torch.zeros_like(x)
    if kind == "constant":
        sign = 1 if torch.rand((), generator=generator) < 0.5 else -1
        return torch.full_like(x, sign * magnitude)
    if kind == "rank_one":  # an outer product; for vectors, one repeated entry
        if x.dim() < 2:
            return torch.full_like(x, magnitude * torch.randn((), generator=generator).item())
        u = torch.randn(x.shape[:-1] + (1,), generator=generator, dtype=x.dtype)
        v = torch.randn(x.shape[:-2] + (1,) + x.shape[-1:], generator=generator, dtype=x.dtype)
        return magnitude * u * v
    return magnitude * torch.randn(x.shape, generator=generator, dtype=x.dtype)


def _draw_raw(
    structure: AbstractStructure,
    shape: Sequence[int],
    dtype: torch.dtype,
    generator: torch.Generator,
    kind: str,
    magnitude: float,
) -> Any:
    template = structure.init(shape, generator=generator, dtype=dtype)
    if kind == "init":
        return template
    return _map(lambda x: _fill(x, kind, magnitude, generator), template)


RAW_KINDS = ("init", "normal", "zeros", "constant", "rank_one")

STANDARD_DTYPES = (torch.float32, torch.float64, torch.complex64, torch.complex128)
"""The dtypes the laws run in, where the structure accepts them."""


def check_laws(
    structure: AbstractStructure,
    shape: Sequence[int] = (4, 4),
    *,
    dtypes: Sequence[torch.dtype] | None = None,
    batch_shapes: Sequence[tuple[int, ...]] = ((), (3,), (2, 3)),
    laws: Sequence[str] | None = None,
    max_magnitude: float = 1e3,
    tolerance: float | None = None,
    seed: int = 0,
) -> None:
    """Run every law of the design on one structure, on inputs drawn from a fixed seed.

    Args:
      structure: the structure under test.
      shape: a structured core shape (the trailing dims).
      dtypes: dtypes for membership, inverse, projection, batching and purity (default:
        those of float32, float64, complex64 and complex128 the structure accepts).
      batch_shapes: leading batch shapes to try.
      laws: which laws to run (names from :data:`LAWS` and :data:`CAPABILITY_LAWS`); by
        default :func:`laws_for` the structure, which adds the laws of its capabilities.
      max_magnitude: the largest raw magnitude the structure promises membership for.
      tolerance: relative error allowed in round trips and projections (default: by dtype).
      seed: seeds every draw.

    Raises:
      LawError: a law broke; the message names it, the input and the size of the violation.
    """
    laws = laws_for(structure) if laws is None else tuple(laws)
    known = (*LAWS, *CAPABILITY_LAWS)
    unknown = set(laws) - set(known)
    if unknown:
        raise ValueError(f"check_laws: unknown laws {sorted(unknown)}; known: {known}.")
    capability_laws = [(name, CAPABILITY_LAWS[name]) for name in laws if name in CAPABILITY_LAWS]
    for name, law in capability_laws:
        if not structure.supports(law.capability):
            raise ValueError(
                f"check_laws: law {name!r} is about {law.capability!r}, which {structure!r} "
                "does not support (testing.laws_for(structure) lists the laws that apply)."
            )
    if dtypes is None:
        dtypes = [d for d in STANDARD_DTYPES if d in structure.dtypes]
    precise = torch.float64 if torch.float64 in structure.dtypes else torch.complex128
    single = torch.float32 if torch.float32 in structure.dtypes else torch.complex64
    gen = torch.Generator().manual_seed(seed)
    shape = tuple(shape)
    magnitudes = sorted({m for m in (1e-3, 1.0, max_magnitude) if m <= max_magnitude})
    per_dtype = {"purity", "membership", "inverse", "projection", "outside", "batching"}
    for dtype in dtypes if per_dtype.intersection(laws) or capability_laws else ():
        for batch in batch_shapes:
            full = (*batch, *shape)
            moderate = _draw_raw(structure, full, dtype, gen, "normal", min(1.0, max_magnitude))
            member = structure.apply(structure.init(full, generator=gen, dtype=dtype))
            arbitrary = 3 * torch.randn(full, generator=gen, dtype=dtype)
            # Purity first: a method that modifies its input would confuse every later law.
            if "purity" in laws:
                _run("purity", structure, check_purity, moderate, arbitrary)
            if "membership" in laws:
                for kind in RAW_KINDS:
                    for magnitude in magnitudes:
                        raw = _draw_raw(structure, full, dtype, gen, kind, magnitude)
                        _run("membership", structure, check_membership, raw)
            if "inverse" in laws:
                _run("inverse", structure, check_inverse, member, tol=tolerance)
                _run("inverse", structure, check_inverse, structure.apply(moderate), tol=tolerance)
            if "projection" in laws:
                _run("projection", structure, check_projection, arbitrary, member, tol=tolerance)
            if "outside" in laws:
                _run(
                    "outside",
                    structure,
                    check_outside,
                    torch.cat(
                        [_batch_elements(structure, arbitrary), _batch_elements(structure, member)]
                    ),
                    tol=tolerance,
                )
            if "batching" in laws and batch:
                _run("batching", structure, check_batching, moderate, arbitrary)
            for name, law in capability_laws:
                _run(name, structure, law.check, moderate, structure.apply(moderate))
                if law.edge is not None and min(law.edge, max_magnitude) > 1:
                    scale = min(law.edge, max_magnitude)
                    edge = _draw_raw(structure, full, dtype, gen, "normal", scale)
                    _run(name, structure, law.check, edge, structure.apply(edge))
    if "derivatives" in laws:
        raw = _draw_raw(structure, (2, *shape), precise, gen, "normal", 1.0)
        _run("derivatives", structure, check_derivatives, raw)
    if "compile" in laws:
        raw = _draw_raw(structure, (2, *shape), single, gen, "normal", 1.0)
        other_shape = _other_shape(structure, shape)
        other = _draw_raw(structure, other_shape, single, gen, "normal", 1.0)
        _run("compile", structure, check_compile, raw, other=other)
    if "bad_input" in laws:
        _run("bad_input", structure, check_bad_input, shape)
    if "raw_form" in laws:
        for batch in batch_shapes:
            _run("raw_form", structure, check_raw_form, (*batch, *shape))


def _other_shape(structure: AbstractStructure, shape: tuple[int, ...]) -> tuple[int, ...]:
    """A batch-3 shape for the dynamic-shape compile.

    One size larger in each core dim if the structure accepts that (a mask of one fixed shape
    does not), else ``shape`` itself.
    """
    n = structure.core_ndim
    grown = (*shape[: len(shape) - n], *(d + 1 for d in shape[len(shape) - n :])) if n else shape
    try:
        structure.init((3, *grown))
    except ValueError:
        grown = shape
    return (3, *grown)


def _run(
    law: str, structure: AbstractStructure, check: Callable[..., None], *args: Any, **kw: Any
) -> None:
    """Run one law's check; an exception the structure raised is that law's failure."""
    try:
        check(structure, *args, **kw)
    except LawError:
        raise
    except Exception as error:
        first = (str(error).strip().splitlines() or [""])[0][:300]
        raise _fail(
            law, structure, f"raised {type(error).__name__}: {first}", args[0] if args else None
        ) from error
