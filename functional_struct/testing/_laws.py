"""Property-testing kit: the laws every structure obeys, as checks, and hypothesis strategies.

The project's own contract tests run on this module, so what users get is exactly what checks
the library. Each ``check_*`` function tests one law of the design on given inputs and raises
:class:`LawError` (an ``AssertionError``) saying which law broke, on which input, by how much;
:func:`check_laws` draws inputs and runs them all. hypothesis is imported only by the
strategies, so the checks work without it.

Example:
  >>> from functional_struct import testing
  >>> testing.check_laws(fs.UpperTriangular(), (3, 3), laws=("membership", "inverse"))
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

import optree
import torch
from torch import Tensor
from torch.func import grad, hessian, jacfwd, jacrev, vmap

from .._catalog import CATALOG, CatalogEntry
from .._rawform import is_factored, leaves
from .._structure import AbstractStructure, default_tolerances, raw_form_of
from .._tree import structure as _structure_tree

__all__ = [
    "CAPABILITY_LAWS",
    "CATALOG",
    "LAWS",
    "CapabilityLaw",
    "CatalogEntry",
    "LawError",
    "catalog",
    "check_batching",
    "check_bad_input",
    "check_compile",
    "check_derivatives",
    "check_inverse",
    "check_laws",
    "check_membership",
    "check_outside",
    "check_projection",
    "check_purity",
    "check_raw_form",
    "fail",
    "laws_for",
    "members",
    "raw_tensors",
    "register_law",
    "shapes",
    "tensors",
]

LAWS = (
    "membership",
    "inverse",
    "projection",
    "outside",
    "batching",
    "derivatives",
    "compile",
    "purity",
    "bad_input",
    "raw_form",
)
"""The laws every structure obeys, by name, in the order :func:`check_laws` runs them."""


class CapabilityLaw(NamedTuple):
    """A law that holds for the structures with one optional capability.

    Attributes:
      capability: the capability's name (``fs.AbstractStructure.supports(capability)``).
      check: ``check(structure, raw, value)`` raises :class:`LawError` when the law breaks;
        ``raw`` is a batch of raw inputs of moderate size and ``value`` their image.
    """

    capability: str
    check: Callable[[Any, Any, Tensor], None]


CAPABILITY_LAWS: dict[str, CapabilityLaw] = {}
"""Laws of optional capabilities by law name; :func:`register_law` adds to it."""


def register_law(name: str, check: Callable[[Any, Any, Tensor], None], *, capability: str) -> None:
    """Add a law for the structures that have an optional capability.

    :func:`check_laws` then runs it on every structure whose ``supports(capability)`` is True,
    in both dtypes and every batch shape, after the laws in :data:`LAWS`.

    Args:
      name: the law's name (used in ``laws=`` and in :class:`LawError` messages).
      check: ``check(structure, raw, value)``, raising :class:`LawError` via ``fail``.
      capability: the capability the law is about.

    Raises:
      ValueError: the name is taken.
    """
    if name in LAWS or name in CAPABILITY_LAWS:
        raise ValueError(f"register_law: a law named {name!r} exists already.")
    CAPABILITY_LAWS[name] = CapabilityLaw(capability, check)


def laws_for(structure: AbstractStructure[Any]) -> tuple[str, ...]:
    """Every law :func:`check_laws` runs on ``structure`` by default.

    :data:`LAWS`, then the registered laws of the capabilities it supports.

    Example:
      >>> testing.laws_for(fs.Diagonal())[-1]
      'raw_form'
    """
    extra = [n for n, law in CAPABILITY_LAWS.items() if structure.supports(law.capability)]
    return (*LAWS, *extra)


# Agreement between two computations of the same value (vmap vs loop, compiled vs eager), as
# max |a - b| / max(1, max |b|). float32 allows for reassociation in batched/fused kernels.
_AGREE = {torch.float32: 1e-4, torch.float64: 1e-9}
# Finite differences in float64 with a central step of 1e-6: truncation ~1e-12, rounding ~1e-10.
_FD_STEP = 1e-6
_FD_TOL = 1e-5


class LawError(AssertionError):
    """A structure broke one of the laws; the message says which, on what input, by how much."""


# ------------------------------------------------------------------------------------ helpers
def _leaves(tree: Any) -> list[Any]:
    return optree.tree_leaves(tree, none_is_leaf=True, namespace="torch")


def _map(fn: Callable[..., Any], tree: Any, *rest: Any) -> Any:
    return optree.tree_map(fn, tree, *rest, none_is_leaf=True, namespace="torch")


def _describe(tree: Any) -> str:
    parts = []
    for x in _leaves(tree):
        if isinstance(x, Tensor):
            finite = x[torch.isfinite(x)]
            top = f"{finite.abs().max().item():.3g}" if finite.numel() else "nan"
            parts.append(
                f"shape {tuple(x.shape)} {str(x.dtype).removeprefix('torch.')}, max|x| {top}"
            )
        else:
            parts.append(repr(x))
    return "; ".join(parts)


def _error(a: Any, b: Any) -> float:
    """Worst ``max|a - b| / max(1, max|b|)`` over matching leaves; inf where shapes differ."""
    worst = 0.0
    for x, y in zip(_leaves(a), _leaves(b), strict=True):
        if x.shape != y.shape:
            return math.inf
        x, y = x.detach().double(), y.detach().double()
        scale = max(1.0, y.abs().max().item() if y.numel() else 1.0)
        diff = (x - y).abs().max().item() if x.numel() else 0.0
        worst = max(worst, diff / scale if math.isfinite(diff) else math.inf)
    return worst


def fail(law: str, structure: Any, detail: str, inputs: Any = None) -> LawError:
    """The :class:`LawError` for a broken law: it names the law, the structure and the input.

    Args:
      law: the law's name.
      structure: the structure under test.
      detail: what broke, by how much.
      inputs: the input it broke on (described by shape, dtype and largest entry).
    """
    return _fail(law, structure, detail, inputs)


def _fail(law: str, structure: Any, detail: str, inputs: Any = None) -> LawError:
    on = f"\n  input: {_describe(inputs)}" if inputs is not None else ""
    return LawError(f"law '{law}' broke for {structure!r}: {detail}{on}")


def _agree(
    law: str, structure: Any, what: str, got: Any, want: Any, inputs: Any, tol: float
) -> None:
    err = _error(got, want)
    if not err <= tol:
        raise _fail(law, structure, f"{what}: relative error {err:.3g} > {tol:.3g}", inputs)


def _dtype(tree: Any) -> torch.dtype:
    return _leaves(tree)[0].dtype


def _batch_ndim(structure: AbstractStructure, value: Tensor) -> int:
    return value.dim() - structure.core_ndim


def _nest_vmap(fn: Callable[..., Any], depth: int) -> Callable[..., Any]:
    for _ in range(depth):
        fn = vmap(fn)
    return fn


def _unbind(raw: Any) -> list[Any]:
    """The raw pytree split along its leading dim (``unbind``, never ``x[i]``)."""
    spec = optree.tree_structure(raw, none_is_leaf=True, namespace="torch")
    parts = zip(*[x.unbind(0) for x in _leaves(raw)], strict=True)
    return [optree.tree_unflatten(spec, list(p)) for p in parts]


def _unbind_loop(fn: Callable[[Any], Any], raw: Any, depth: int) -> Any:
    """``fn`` applied by a Python loop over the leading ``depth`` dims (results are pytrees)."""
    if depth == 0:
        return fn(raw)
    results = [_unbind_loop(fn, part, depth - 1) for part in _unbind(raw)]
    return optree.tree_map(
        lambda *xs: torch.stack(xs), *results, none_is_leaf=True, namespace="torch"
    )


# ---------------------------------------------------------------------------------- the laws
def check_membership(
    structure: AbstractStructure, raw: Any, *, atol: float | None = None, rtol: float | None = None
) -> None:
    """Law 1: ``apply(raw)`` is finite and ``contains`` it, for every matrix of the batch.

    Args:
      structure: the structure under test.
      raw: a raw input in the structure's documented range.
      atol: tolerance passed to ``contains``.
      rtol: tolerance passed to ``contains``.
    """
    value = structure.apply(raw)
    if not torch.isfinite(value).all():
        raise _fail("membership", structure, "apply(raw) has non-finite entries", raw)
    inside = structure.contains(value, atol, rtol)
    if not inside.all():
        gap = _error(value, structure.project(value))
        raise _fail(
            "membership",
            structure,
            f"contains(apply(raw)) is False for {int((~inside).sum())} of {inside.numel()} "
            f"matrices; apply(raw) is at relative distance {gap:.3g} from its projection",
            raw,
        )


def check_inverse(structure: AbstractStructure, value: Tensor, *, tol: float | None = None) -> None:
    """Law 2a: ``apply(inverse(value)) ≈ value`` for members ``value``.

    Args:
      structure: the structure under test.
      value: members of the set (for example ``apply`` of moderate raw).
      tol: allowed ``max|error| / max(1, max|value|)``; defaults by dtype.
    """
    raw = structure.inverse(value)
    tol = default_tolerances(value.dtype)[1] if tol is None else tol
    _agree("inverse", structure, "apply(inverse(v)) vs v", structure.apply(raw), value, value, tol)


def check_projection(
    structure: AbstractStructure, value: Tensor, member: Tensor, *, tol: float | None = None
) -> None:
    """Law 2b: ``project`` lands in the set, is idempotent, and fixes members.

    Args:
      structure: the structure under test.
      value: any tensor of the structured shape.
      member: members of the set, of the same shape.
      tol: allowed relative error of the fixed-point checks; defaults by dtype.
    """
    tol = default_tolerances(value.dtype)[1] if tol is None else tol
    projected = structure.project(value)
    inside = structure.contains(projected)
    if not inside.all():
        raise _fail(
            "projection",
            structure,
            f"contains(project(x)) is False for {int((~inside).sum())} of {inside.numel()}",
            value,
        )
    _agree(
        "projection",
        structure,
        "project(project(x)) vs project(x)",
        structure.project(projected),
        projected,
        value,
        tol,
    )
    _agree(
        "projection",
        structure,
        "project(v) vs v for a member v",
        structure.project(member),
        member,
        member,
        tol,
    )


def _batch_elements(structure: AbstractStructure, value: Tensor) -> Tensor:
    """``value`` with its batch dims flattened into one leading dim (entries, if elementwise)."""
    core = value.shape[value.dim() - structure.core_ndim :] if structure.core_ndim else ()
    return value.reshape(-1, *core)


def _hostile(structure: AbstractStructure, value: Tensor) -> Tensor:
    """A batch of values no structure is promised to like.

    ``value`` flattened to one batch dim, then zeros, a constant, entries of 1e30 (1e300 in
    float64), and elements with one NaN, one +Inf and one -Inf entry.
    """
    flat = _batch_elements(structure, value)
    huge = 1e300 if value.dtype == torch.float64 else 1e30
    first = flat[:1]
    extra = [torch.zeros_like(first), torch.full_like(first, 2.0), huge * first.sign()]
    for bad in (math.nan, math.inf, -math.inf):
        corrupt = first.clone().reshape(1, -1)
        corrupt[:, 0] = bad
        extra.append(corrupt.reshape(first.shape))
    return torch.cat([flat, *extra])


def check_outside(structure: AbstractStructure, value: Tensor, *, tol: float | None = None) -> None:
    """Law 2c: values outside the set never raise, and ``inverse`` follows one rule.

    On ``value`` and on hostile elements added to it (zeros, constants, entries of 1e30 or
    1e300, one NaN, one Inf): ``contains``, ``project``, ``inverse`` and ``raw_from`` return
    without raising; an element with a NaN or Inf entry gives ``False``, a NaN projection and a
    NaN raw. For every finite element, ``apply(inverse(v))`` is ``project(v)`` when the
    structure's ``inverse_outside`` is ``"project"``; otherwise it is ``v`` where ``contains(v)``
    and all-NaN where not. ``apply`` of a raw with a NaN element does not raise and leaves the
    other elements as they were.

    Args:
      structure: the structure under test.
      value: any tensors of the structured shape, with at least one batch dim.
      tol: allowed relative error of the round trips; defaults by dtype.
    """
    tol = default_tolerances(value.dtype)[1] if tol is None else tol
    x = _hostile(structure, value)
    finite = torch.isfinite(x.reshape(x.shape[0], -1)).all(-1)
    inside = structure.contains(x)
    projected = structure.project(x)
    raw = structure.inverse(x)
    structure.raw_from(x)
    if inside[~finite].any():
        raise _fail("outside", structure, "contains is True for a value with NaN or Inf", x)
    if not torch.isnan(projected[~finite]).all():
        raise _fail("outside", structure, "project of a value with NaN or Inf is not NaN", x)
    # A member is a fixed point of project: a contains that says True too often breaks this.
    for i in torch.nonzero(inside.reshape(-1) & finite).flatten().tolist():
        _agree(
            "outside",
            structure,
            f"project(v) vs v for element {i}, which contains accepts",
            projected[i],
            x[i],
            x[i],
            tol,
        )
    image = structure.apply(raw)
    raw_elements = [_leaves(_map(lambda r, i=i: r[i], raw)) for i in range(x.shape[0])]
    for i in range(x.shape[0]):
        element, got = x[i], image[i]
        all_nan = all(bool(torch.isnan(leaf).all()) for leaf in raw_elements[i])
        if not finite[i]:
            if not all_nan:
                raise _fail("outside", structure, f"inverse of non-finite element {i}: not NaN", x)
            continue
        if element.abs().max() > 1e20:  # beyond the maps' promised ranges: no raise is enough
            continue
        if structure.inverse_outside == "project":
            want = projected[i]
            what = f"apply(inverse(v)) vs project(v) for element {i} (inverse_outside='project')"
        elif inside[i]:
            want, what = element, f"apply(inverse(v)) vs v for the member element {i}"
        else:
            if not all_nan:
                raise _fail(
                    "outside",
                    structure,
                    f"inverse of the non-member element {i} is not NaN "
                    f"(inverse_outside='nan'): apply(inverse(v)) is at relative distance "
                    f"{_error(got, projected[i]):.3g} from project(v)",
                    element,
                )
            continue
        _agree("outside", structure, what, got, want, element, tol)
    # One NaN element of a batched raw leaves the others untouched.
    template = structure.inverse(projected[:2].clone())
    clean = structure.apply(template)
    poisoned = _map(lambda r: torch.cat([torch.full_like(r[:1], math.nan), r[1:]]), template)
    dirty = structure.apply(poisoned)
    if not torch.equal(torch.isnan(dirty[1:]), torch.isnan(clean[1:])) or _error(
        torch.nan_to_num(dirty[1:]), torch.nan_to_num(clean[1:])
    ) > _AGREE.get(value.dtype, 1e-2):
        raise _fail("outside", structure, "a NaN raw element changed another element", poisoned)


def check_batching(structure: AbstractStructure, raw: Any, value: Tensor) -> None:
    """Law 3: batched calls, ``vmap`` and a Python loop (``unbind``) agree, for every method.

    For ``inverse`` the images ``apply(inverse(v))`` must agree: a right inverse need not be
    unique (the signs of singular vectors, say), and any choice is correct.

    Args:
      structure: the structure under test.
      raw: a raw input with at least one batch dim.
      value: a tensor of the structured shape with the same batch dims (for ``project`` and
        ``contains``; ``inverse`` is checked on ``apply(raw)``).
    """
    depth = _batch_ndim(structure, value)
    if depth < 1:
        raise ValueError("check_batching needs inputs with at least one batch dim.")
    tol = _AGREE.get(value.dtype, 1e-2)
    member = structure.apply(raw)
    for name, fn, x in (
        ("apply", structure.apply, raw),
        ("inverse", structure.inverse, member),
        ("project", structure.project, value),
        ("contains", structure.contains, value),
    ):
        direct = fn(x)
        vmapped = _nest_vmap(fn, depth)(x)
        looped = _unbind_loop(fn, x, depth)
        if name == "inverse":  # a right inverse need not be unique (SVD signs): compare images
            direct, vmapped, looped = map(structure.apply, (direct, vmapped, looped))
        if name == "contains":
            if not (torch.equal(direct, vmapped) and torch.equal(direct, looped)):
                raise _fail("batching", structure, "contains: batched, vmap and loop disagree", x)
            continue
        _agree("batching", structure, f"vmap({name}) vs {name}", vmapped, direct, x, tol)
        _agree("batching", structure, f"loop of {name} vs {name}", looped, direct, x, tol)

    # An empty batch: every method answers with an empty batch of the right shape.
    def emptied(tree: Any) -> list[tuple[int, ...]]:
        return [(0, *leaf.shape[depth:]) for leaf in _leaves(tree)]

    empty_raw = _map(lambda r: r.new_zeros((0, *r.shape[depth:])), raw)
    empty_value = value.new_zeros((0, *value.shape[depth:]))
    for name, fn, x, want in (
        ("apply", structure.apply, empty_raw, emptied(member)),
        ("inverse", structure.inverse, empty_value, emptied(structure.inverse(member))),
        ("project", structure.project, empty_value, emptied(value)),
        ("contains", structure.contains, empty_value, [(0,)]),
    ):
        shapes = [tuple(leaf.shape) for leaf in _leaves(fn(x))]
        if shapes != want:
            raise _fail(
                "batching", structure, f"{name} of an empty batch gave {shapes}, not {want}", x
            )


def _flat_view(structure: AbstractStructure, raw: Any) -> tuple[Tensor, Callable[[Tensor], Tensor]]:
    """``raw`` as one vector, and ``apply`` as a function of such vectors, flattened."""
    leaves = _leaves(raw)
    spec = optree.tree_structure(raw, none_is_leaf=True, namespace="torch")
    sizes = [x.numel() for x in leaves]
    shapes = [x.shape for x in leaves]

    def fn(vector: Tensor) -> Tensor:
        parts = [p.reshape(s) for p, s in zip(vector.split(sizes), shapes, strict=True)]
        return structure.apply(optree.tree_unflatten(spec, parts)).flatten()

    return torch.cat([x.flatten() for x in leaves]), fn


def check_derivatives(structure: AbstractStructure, raw: Any, *, tol: float = _FD_TOL) -> None:
    """Law 4: derivatives agree with float64 finite differences and with each other.

    ``jacrev``, ``jacfwd`` and ``hessian`` are compared with finite differences, ``vmap(jacfwd)``
    and ``vmap(grad)`` with loops, ``jacrev(jacrev)`` with ``hessian``; gradients are finite.

    Args:
      structure: the structure under test.
      raw: a float64 raw input with one batch dim, away from any kink of the map.
      tol: allowed relative error against finite differences.
    """
    if _dtype(raw) != torch.float64:
        raise ValueError("check_derivatives compares with finite differences: pass float64 raw.")
    batch = _unbind(raw)
    flats = [_flat_view(structure, r) for r in batch]
    vectors = torch.stack([v for v, _ in flats])
    fn = flats[0][1]
    gen = torch.Generator().manual_seed(0)
    out_numel = fn(vectors[0]).numel()
    weights = torch.randn(out_numel, generator=gen, dtype=torch.float64)

    def loss(vector: Tensor) -> Tensor:
        out = fn(vector)
        return (weights * out).sum() + 0.5 * (weights * out * out).sum()

    if vectors.shape[-1] == 0:
        return  # nothing to differentiate (an empty packed raw)
    for i, vector in enumerate(vectors.unbind(0)):
        # Finite-difference Jacobian, column by column (inputs here are small).
        eye = torch.eye(vector.numel(), dtype=torch.float64)
        fd = torch.stack(
            [
                (fn(vector + _FD_STEP * e) - fn(vector - _FD_STEP * e)) / (2 * _FD_STEP)
                for e in eye.unbind(0)
            ],
            dim=-1,
        )
        where = batch[i]
        _agree(
            "derivatives",
            structure,
            "jacrev vs finite differences",
            jacrev(fn)(vector),
            fd,
            where,
            tol,
        )
        _agree(
            "derivatives",
            structure,
            "jacfwd vs finite differences",
            jacfwd(fn)(vector),
            fd,
            where,
            tol,
        )
        g = grad(loss)(vector)
        if not torch.isfinite(g).all():
            raise _fail("derivatives", structure, "grad has non-finite entries", where)
        fd_hess = torch.stack(
            [
                (grad(loss)(vector + _FD_STEP * e) - grad(loss)(vector - _FD_STEP * e))
                / (2 * _FD_STEP)
                for e in eye.unbind(0)
            ],
            dim=-1,
        )
        _agree(
            "derivatives",
            structure,
            "hessian vs finite differences of grad",
            hessian(loss)(vector),
            fd_hess,
            where,
            tol,
        )
        _agree(
            "derivatives",
            structure,
            "jacrev(jacrev) vs hessian",
            jacrev(jacrev(loss))(vector),
            hessian(loss)(vector),
            where,
            tol,
        )
    # torch 2.13 gets vmap(jacfwd(linalg.solve)) silently wrong, so compare with the loop.
    looped = torch.stack([jacfwd(fn)(v) for v in vectors.unbind(0)])
    _agree(
        "derivatives",
        structure,
        "vmap(jacfwd) vs jacfwd in a loop",
        vmap(jacfwd(fn))(vectors),
        looped,
        raw,
        tol,
    )
    _agree(
        "derivatives",
        structure,
        "vmap(grad) vs grad in a loop",
        vmap(grad(loss))(vectors),
        torch.stack([grad(loss)(v) for v in vectors.unbind(0)]),
        raw,
        tol,
    )


def check_compile(
    structure: AbstractStructure, raw: Any, *, jacobian: bool = True, other: Any = None
) -> None:
    """Law 5: compiled ``apply``, ``vmap(grad(loss))`` and ``jacfwd(apply)`` match eager.

    Each is compiled with ``torch.compile(fullgraph=True)`` (inductor), so a graph break fails
    the law. dynamo's caches are reset first, so that checks of many structures do not hit its
    recompile limit. The Jacobian is compiled for one matrix: in torch 2.13 inductor fails
    (an internal assert) on ``vmap(jacfwd(f))`` for any ``f`` that uses the output of
    ``torch.linalg.inv``, which is torch's bug, not the structure's.

    Args:
      structure: the structure under test.
      raw: a raw input with one batch dim.
      jacobian: also compile the forward-mode Jacobian (inductor has been wrong there for
        ``index_put``).
      other: a raw input of another shape (another size, or another batch size). When given,
        ``apply`` is also compiled with ``dynamic=True`` and run on both shapes, and with the
        default ``dynamic=None`` run on ``raw`` and then on ``other`` (which recompiles with
        dynamic shapes): both must match eager.
    """
    tol = 10 * _AGREE.get(_dtype(raw), 1e-2)

    def loss(r: Any) -> Tensor:
        return structure.apply(r).square().sum()

    checks: list[tuple[str, Callable[[Any], Any], Any]] = [
        ("apply", structure.apply, raw),
        ("vmap(grad(loss))", vmap(grad(loss)), raw),
    ]
    if jacobian:
        checks.append(("jacfwd(apply)", jacfwd(structure.apply), _unbind(raw)[0]))
    torch._dynamo.reset()
    for name, fn, x in checks:
        try:
            compiled = torch.compile(fn, fullgraph=True)(x)
        except Exception as error:  # any compile failure breaks the law; say which
            first = str(error).strip().splitlines()[0][:300]
            raise _fail(
                "compile",
                structure,
                f"torch.compile({name}, fullgraph=True) failed: {type(error).__name__}: {first}",
                x,
            ) from error
        _agree("compile", structure, f"compiled {name} vs eager", compiled, fn(x), x, tol)
    if other is None:
        return
    for dynamic in (True, None):
        torch._dynamo.reset()
        compiled_fn = torch.compile(structure.apply, fullgraph=True, dynamic=dynamic)
        for x in (raw, other, raw):
            try:
                compiled = compiled_fn(x)
            except Exception as error:
                first = str(error).strip().splitlines()[0][:300]
                raise _fail(
                    "compile",
                    structure,
                    f"torch.compile(apply, fullgraph=True, dynamic={dynamic}) failed on a "
                    f"second shape: {type(error).__name__}: {first}",
                    x,
                ) from error
            _agree(
                "compile",
                structure,
                f"compiled apply (dynamic={dynamic}) vs eager",
                compiled,
                structure.apply(x),
                x,
                tol,
            )


def check_purity(structure: AbstractStructure, raw: Any, value: Tensor) -> None:
    """Law 6: inputs are never modified, dtype and device are kept, ``init`` is reproducible.

    Args:
      structure: the structure under test.
      raw: a raw input.
      value: a tensor of the structured shape.
    """
    before_raw, before_value = _map(torch.clone, raw), value.clone()
    out = {
        "apply": structure.apply(raw),
        "inverse": structure.inverse(value),
        "project": structure.project(value),
        "contains": structure.contains(value),
    }
    if _error(raw, before_raw) != 0 or not torch.equal(value, before_value):
        raise _fail("purity", structure, "a method modified its input in place", raw)
    dtype, device = value.dtype, value.device
    for name, result in out.items():
        for leaf in _leaves(result):
            want = torch.bool if name == "contains" else dtype
            if leaf.dtype != want or leaf.device != device:
                raise _fail(
                    "purity",
                    structure,
                    f"{name} returned {leaf.dtype} on {leaf.device}, expected {want} on {device}",
                    value,
                )
    shape = value.shape
    draws = [
        structure.init(shape, generator=torch.Generator().manual_seed(7), dtype=dtype)
        for _ in range(2)
    ]
    if _error(draws[0], draws[1]) != 0:
        raise _fail("purity", structure, "init with equal generators gave different raw", value)
    for leaf in _leaves(draws[0]):
        if leaf.dtype != dtype:
            raise _fail("purity", structure, f"init(dtype={dtype}) returned {leaf.dtype}", value)
    meta = structure.init(shape, dtype=dtype, device="meta")
    want_shapes = [leaf.shape for leaf in _leaves(draws[0])]
    if [leaf.shape for leaf in _leaves(meta)] != want_shapes or any(
        leaf.device.type != "meta" for leaf in _leaves(meta)
    ):
        raise _fail("purity", structure, "init(device='meta') gave other shapes or devices", value)
    if structure.apply(meta).shape != structure.apply(draws[0]).shape:
        raise _fail("purity", structure, "apply on the meta device gave another shape", value)


def _expect_error(
    structure: Any,
    call: Callable[[], Any],
    kind: type[Exception],
    fragments: Iterable[str],
    case: str,
) -> None:
    try:
        call()
    except kind as error:
        message = str(error)
        missing = [f for f in fragments if not re.search(f, message)]
        if missing:
            raise _fail(
                "bad_input",
                structure,
                f"{case}: the {kind.__name__} does not mention {missing}: {message!r}",
            ) from None
        return
    except Exception as error:
        raise _fail(
            "bad_input",
            structure,
            f"{case}: raised {type(error).__name__} instead of {kind.__name__}: {error}",
        ) from None
    raise _fail("bad_input", structure, f"{case}: no error was raised")


def check_bad_input(structure: AbstractStructure, shape: Sequence[int]) -> None:
    """Law 7: bad input gets a ``ValueError``/``TypeError`` that names the structure and the got.

    Through a tree, the message also names the tree path.

    Args:
      structure: the structure under test.
      shape: a valid structured shape (without batch dims).
    """
    name = re.escape(type(structure).__name__)
    too_few = torch.zeros((2,) * (structure.core_ndim - 1))
    template = structure.init(shape)  # a tensor, or a tuple for factored structures
    integer_raw = _map(lambda x: x.long(), template)
    form = raw_form_of(structure)
    if not is_factored(form):
        too_few_raw: Any = torch.zeros((2,) * (len(form) - 1))  # type: ignore[arg-type]
    else:  # the template has no batch dims: one dim fewer in every part
        too_few_raw = _map(lambda x: torch.zeros(x.shape[1:]), template)
    got_raw = "got shape"
    tree = _structure_tree({"layer.weight": structure})
    not_a_tensor: Any = [[0.0]]
    cases: list[tuple[str, Callable[[], Any], type[Exception], list[str]]] = [
        (
            "integer tensor",
            lambda: structure.apply(integer_raw),
            TypeError,
            [name, "int64"],
        ),
        (
            "bool tensor",
            lambda: structure.contains(torch.zeros(shape, dtype=torch.bool)),
            TypeError,
            [name, "bool"],
        ),
        (
            "complex tensor",
            lambda: structure.project(torch.zeros(shape, dtype=torch.complex64)),
            TypeError,
            [name, "complex64"],
        ),
        ("not a tensor", lambda: structure.inverse(not_a_tensor), TypeError, [name, "list"]),
        (
            "tree path, dtype",
            lambda: tree.apply({"layer.weight": integer_raw}),
            TypeError,
            [name, "'layer.weight'", "int64"],
        ),
    ]
    if structure.core_ndim > 0 and all(len(f) > 0 for f in leaves(form)):  # not elementwise
        cases += [
            ("too few dims", lambda: structure.apply(too_few_raw), ValueError, [name, got_raw]),
            ("init shape", lambda: structure.init(too_few.shape), ValueError, [name, "got shape"]),
            (
                "tree path, shape",
                lambda: tree.apply({"layer.weight": too_few_raw}),
                ValueError,
                [name, "'layer.weight'", got_raw],
            ),
        ]
    if is_factored(form):
        cases.append(
            (
                "one tensor for a factored raw",
                lambda: structure.apply(torch.zeros(shape)),
                TypeError,
                [name, "tuple", "Tensor"],
            )
        )
    if structure.square:
        wide = (*shape[:-1], shape[-1] + 1)
        cases.append(
            (
                "non-square",
                lambda: structure.project(torch.zeros(wide)),
                ValueError,
                [name, "square", re.escape(str(tuple(wide)))],
            )
        )
    for case, call, kind, fragments in cases:
        _expect_error(structure, call, kind, fragments, case)


def check_raw_form(structure: AbstractStructure[Any], shape: Sequence[int]) -> None:
    """Law 9: raws have the form ``raw_shape`` declares, and ``value_shape`` inverts it.

    ``init``, ``inverse`` and ``raw_from`` give raws whose tensors have the core shapes of
    ``raw_shape(core)`` behind the batch dims; ``value_shape(raw_shape(core)) == core``; and
    ``apply`` of such a raw has the structured shape.

    Args:
      structure: the structure under test.
      shape: a structured shape, batch dims included.
    """
    n = structure.core_ndim
    batch, core = tuple(shape[: len(shape) - n]), tuple(shape[len(shape) - n :])
    form = structure.raw_shape(core)
    want = [(*batch, *leaf) for leaf in leaves(form)]
    back = structure.value_shape(form)
    if tuple(back) != core:
        raise _fail("raw_form", structure, f"value_shape(raw_shape({core})) is {tuple(back)}")
    raw = structure.init(shape, generator=torch.Generator().manual_seed(0))
    member = structure.apply(raw)
    if tuple(member.shape) != tuple(shape):
        raise _fail("raw_form", structure, f"apply gave shape {tuple(member.shape)}", raw)
    for what, candidate in (
        ("init", raw),
        ("inverse", structure.inverse(member)),
        ("raw_from", structure.raw_from(member)),
    ):
        got = [tuple(t.shape) for t in leaves(candidate)]
        nested = is_factored(form) == isinstance(candidate, tuple)
        if got != want or not nested:
            raise _fail(
                "raw_form",
                structure,
                f"{what} gave a raw of shapes {got}; raw_shape({core}) declares {want}",
                candidate,
            )


# --------------------------------------------------------------------------------- the driver
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


def check_laws(
    structure: AbstractStructure,
    shape: Sequence[int] = (4, 4),
    *,
    dtypes: Sequence[torch.dtype] = (torch.float32, torch.float64),
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
      dtypes: dtypes for membership, inverse, projection, batching and purity.
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
    capability_laws = [
        (name, CAPABILITY_LAWS[name])
        for name in laws
        if name in CAPABILITY_LAWS and structure.supports(CAPABILITY_LAWS[name].capability)
    ]
    gen = torch.Generator().manual_seed(seed)
    shape = tuple(shape)
    magnitudes = sorted({m for m in (1e-3, 1.0, max_magnitude) if m <= max_magnitude})
    for dtype in dtypes:
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
    if "derivatives" in laws:
        raw = _draw_raw(structure, (2, *shape), torch.float64, gen, "normal", 1.0)
        _run("derivatives", structure, check_derivatives, raw)
    if "compile" in laws:
        raw = _draw_raw(structure, (2, *shape), torch.float32, gen, "normal", 1.0)
        other_shape = _other_shape(structure, shape)
        other = _draw_raw(structure, other_shape, torch.float32, gen, "normal", 1.0)
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


# -------------------------------------------------------------------------------- strategies
def _st() -> Any:
    try:
        import hypothesis.strategies as st
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            "functional_struct.testing strategies need hypothesis: pip install hypothesis"
        ) from error
    return st


def raw_tensors(
    structure: AbstractStructure,
    shape: Sequence[int],
    *,
    dtype: torch.dtype = torch.float64,
    max_magnitude: float = 1e3,
    min_magnitude: float = 0.0,
    kinds: Sequence[str] = RAW_KINDS,
) -> Any:
    """A hypothesis strategy of raw inputs for ``structure`` at structured ``shape``.

    Draws include ``init`` samples, Gaussian raw at magnitudes from 1e-3 to ``max_magnitude``,
    exact zeros, constants and rank-one raw. Tensors are generated by torch from a drawn seed,
    so large shapes stay cheap.

    Args:
      structure: the structure whose raw form to draw.
      shape: the structured shape, batch dims included.
      dtype: the floating dtype.
      max_magnitude: the largest scale of drawn entries.
      min_magnitude: the smallest scale (raise it to keep away from a kink at zero).
      kinds: which kinds of raw to draw, from ``RAW_KINDS``.

    Returns:
      A strategy of raw tensors (or raw pytrees, for factored structures).
    """
    st = _st()
    scales = sorted(
        {m for m in (1e-3, 1.0, 3.0, max_magnitude) if min_magnitude <= m <= max_magnitude}
    )
    return st.builds(
        lambda kind, magnitude, seed: _draw_raw(
            structure, shape, dtype, torch.Generator().manual_seed(seed), kind, magnitude
        ),
        st.sampled_from(tuple(kinds)),
        st.sampled_from(scales),
        st.integers(0, 2**32 - 1),
    )


def tensors(
    shape: Sequence[int],
    *,
    dtype: torch.dtype = torch.float64,
    max_magnitude: float = 10.0,
) -> Any:
    """A hypothesis strategy of arbitrary tensors (members or not), for ``project``/``contains``.

    Draws Gaussian, zero, constant and rank-one tensors at magnitudes up to ``max_magnitude``.

    Args:
      shape: the shape, batch dims included.
      dtype: the floating dtype.
      max_magnitude: the largest scale.

    Returns:
      A strategy of tensors.
    """
    st = _st()
    scales = sorted({m for m in (1e-3, 1.0, max_magnitude) if m <= max_magnitude})
    return st.builds(
        lambda kind, magnitude, seed: _fill(
            torch.empty(tuple(shape), dtype=dtype),
            kind,
            magnitude,
            torch.Generator().manual_seed(seed),
        ),
        st.sampled_from(("normal", "zeros", "constant", "rank_one")),
        st.sampled_from(scales),
        st.integers(0, 2**32 - 1),
    )


def members(
    structure: AbstractStructure,
    shape: Sequence[int],
    *,
    dtype: torch.dtype = torch.float64,
    max_magnitude: float = 3.0,
) -> Any:
    """A hypothesis strategy of members of the set: ``apply`` of drawn raw inputs.

    Args:
      structure: the structure.
      shape: the structured shape, batch dims included.
      dtype: the floating dtype.
      max_magnitude: the largest raw scale.

    Returns:
      A strategy of tensors in the set.
    """
    return raw_tensors(structure, shape, dtype=dtype, max_magnitude=max_magnitude).map(
        structure.apply
    )


def shapes(structure: AbstractStructure, *, max_batch_dims: int = 2, max_side: int = 6) -> Any:
    """A hypothesis strategy of structured shapes (batch dims included) ``structure`` accepts.

    Args:
      structure: the structure.
      max_batch_dims: the most leading batch dims.
      max_side: the largest size of any dim.

    Returns:
      A strategy of tuples of ints.
    """
    st = _st()
    side = st.integers(1, max_side)
    batch = st.lists(st.integers(1, 3), max_size=max_batch_dims).map(tuple)
    ndim = structure.core_ndim
    fixed = getattr(structure, "_mask_shape", None)  # structures of one shape only
    if fixed is not None:
        core = st.just(fixed())
    elif ndim >= 2 and structure.square:
        core = st.tuples(st.lists(side, min_size=ndim - 2, max_size=ndim - 2), side).map(
            lambda c: (*c[0], c[1], c[1])
        )
    else:
        core = st.lists(side, min_size=ndim, max_size=ndim).map(tuple)
    accepted = core.filter(lambda c: _accepts(structure, c))
    return st.tuples(batch, accepted).map(lambda bc: bc[0] + bc[1])


def _accepts(structure: AbstractStructure[Any], core: tuple[int, ...]) -> bool:
    try:
        structure._check_shape(torch.Size(core), "shapes", "shape")
    except ValueError:
        return False
    return True


def catalog() -> Any:
    """A hypothesis strategy over the built-in catalog (:data:`CATALOG` entries).

    Returns:
      A strategy of :class:`CatalogEntry`; ``entry.structure`` is the structure.
    """
    return _st().sampled_from(CATALOG)
