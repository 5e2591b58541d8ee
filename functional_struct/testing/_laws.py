"""The laws every structure obeys, one ``check_*`` per law, and the helpers they share.

Each check tests one law on given inputs and raises :class:`LawError` naming the law, the input
and the size of the violation.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import optree
import torch
from torch import Tensor
from torch.func import grad, hessian, jacfwd, jacrev, vmap

from .._rawform import is_factored, leaves
from .._structure import AbstractStructure, default_tolerances, raw_form_of
from .._tree import structure as _structure_tree

# Agreement between two computations of the same value (vmap vs loop, compiled vs eager), as
# max |a - b| / max(1, max |b|). float32 allows for reassociation in batched/fused kernels.
_AGREE = {torch.float32: 1e-4, torch.float64: 1e-9, torch.complex64: 1e-4, torch.complex128: 1e-9}
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


def widen(x: Tensor) -> Tensor:
    """``x`` in float64, or complex128 if it is complex (``double()`` drops imaginary parts)."""
    return x.to(torch.complex128 if x.is_complex() else torch.float64)


def widen_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64, or complex128 for a complex ``dtype``."""
    return torch.complex128 if dtype.is_complex else torch.float64


def real_view(x: Tensor) -> Tensor:
    """A real tensor with the same numbers: ``view_as_real`` (a trailing dim of 2) if complex.

    torch.func's Jacobians take and give real tensors only; derivatives of complex maps are
    those of the real and imaginary parts (torch's convention for gradients of real losses).
    """
    return torch.view_as_real(x) if x.is_complex() else x


def _rebuild(raw: Any, fn: Callable[[Tensor], Tensor]) -> Any:
    """``fn`` on every tensor of a raw (a tensor or nested (named) tuples), without optree.

    For functions dynamo traces: it does not trace optree's tree specs.
    """
    if isinstance(raw, Tensor):
        return fn(raw)
    parts = [_rebuild(part, fn) for part in raw]
    return type(raw)(*parts) if hasattr(raw, "_fields") else tuple(parts)


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
        x, y = widen(x.detach()), widen(y.detach())
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
    huge = 1e300 if value.dtype in (torch.float64, torch.complex128) else 1e30
    first = flat[:1]
    extra = [torch.zeros_like(first), torch.full_like(first, 2.0), huge * torch.sgn(first)]
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
    """``raw`` as one real vector, and ``apply`` as a function of such vectors, flattened.

    Complex raws and values are read as their real and imaginary parts (:func:`real_view`).
    """
    leaves = [real_view(x) for x in _leaves(raw)]
    complex_raw = [x.is_complex() for x in _leaves(raw)]
    spec = optree.tree_structure(raw, none_is_leaf=True, namespace="torch")
    sizes = [x.numel() for x in leaves]
    shapes = [x.shape for x in leaves]

    def fn(vector: Tensor) -> Tensor:
        parts = [
            torch.view_as_complex(p.reshape(s)) if c else p.reshape(s)
            for p, s, c in zip(vector.split(sizes), shapes, complex_raw, strict=True)
        ]
        return real_view(structure.apply(optree.tree_unflatten(spec, parts))).flatten()

    return torch.cat([x.flatten() for x in leaves]), fn


def check_derivatives(structure: AbstractStructure, raw: Any, *, tol: float = _FD_TOL) -> None:
    """Law 4: derivatives agree with float64 finite differences and with each other.

    ``jacrev``, ``jacfwd`` and ``hessian`` are compared with finite differences, ``vmap(jacfwd)``
    and ``vmap(grad)`` with loops, ``jacrev(jacrev)`` with ``hessian``; gradients are finite.

    Complex raws and values are differentiated as their real and imaginary parts.

    Args:
      structure: the structure under test.
      raw: a float64 (or complex128) raw input with one batch dim, away from any kink.
      tol: allowed relative error against finite differences.
    """
    if _dtype(raw) not in (torch.float64, torch.complex128):
        raise ValueError(
            "check_derivatives compares with finite differences: pass float64 or complex128 raw."
        )
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
        return real_view(structure.apply(r)).square().sum()

    checks: list[tuple[str, Callable[[Any], Any], Any]] = [
        ("apply", structure.apply, raw),
        ("vmap(grad(loss))", vmap(grad(loss)), raw),
    ]
    if jacobian:
        one = _unbind(raw)[0]
        if any(x.is_complex() for x in _leaves(one)):  # torch.func's Jacobians: real only

            def real_apply(r: Any) -> Tensor:
                return real_view(structure.apply(_rebuild(r, torch.view_as_complex)))

            checks.append(("jacfwd(apply)", jacfwd(real_apply), _rebuild(one, real_view)))
        else:
            checks.append(("jacfwd(apply)", jacfwd(structure.apply), one))
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
    template = structure.init(shape)  # a tensor, or a tuple for factored structures
    ok = _dtype(template)  # an accepted dtype, for the cases about shapes
    too_few = torch.zeros((2,) * (structure.core_ndim - 1), dtype=ok)
    integer_raw = _map(lambda x: torch.zeros_like(x, dtype=torch.long), template)
    refused = next(
        d for d in (torch.complex64, torch.float32, torch.int32) if d not in structure.dtypes
    )
    refused_name = str(refused).removeprefix("torch.")
    form = raw_form_of(structure)
    if not is_factored(form):
        too_few_raw: Any = torch.zeros((2,) * (len(next(leaves(form))) - 1), dtype=ok)
    else:  # the template has no batch dims: one dim fewer in every part
        too_few_raw = _map(lambda x: torch.zeros(x.shape[1:], dtype=ok), template)
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
            f"{refused_name} tensor (a dtype it refuses)",
            lambda: structure.project(torch.zeros(shape, dtype=refused)),
            TypeError,
            [name, refused_name],
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
                lambda: structure.apply(torch.zeros(shape, dtype=ok)),
                TypeError,
                [name, "tuple", "Tensor"],
            )
        )
    if structure.square:
        wide = (*shape[:-1], shape[-1] + 1)
        cases.append(
            (
                "non-square",
                lambda: structure.project(torch.zeros(wide, dtype=ok)),
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
