"""Structure trees: ``fs.structure(spec)`` pairs spec leaves with the leaves of raw pytrees.

The flow is spec -> rules -> resolve -> leaf maps. ``structure(spec)`` flattens the spec into
rules (``_resolve.spec_rules``); each method flattens its input with optree, asks
``_resolve.resolve`` which rule governs every node (cached by value, per tree layout), groups
the tensors of a factored raw into one leaf, and calls the leaf structure's method on each
governed leaf: one code path, the same in eager runs and under ``torch.compile``.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import optree
import torch
from torch import Tensor

from ._rawform import is_factored, map_raw
from ._resolve import Rule, resolve, resolve_uncached, spec_rules
from ._structure import AbstractStructure, NotSupported, raw_form_of

__all__ = ["StructureTree", "structure"]

Spec = Any


def _batch_shape(batch_shape: Any, method: str) -> tuple[int, ...]:
    """``batch_shape`` as a tuple of ints >= 0, or a TypeError/ValueError that says why not."""
    if not isinstance(batch_shape, Sequence) or isinstance(batch_shape, str):
        raise TypeError(
            f"fs.structure.{method}: batch_shape must be a tuple of ints, such as (8,), "
            f"got {type(batch_shape).__name__}: {batch_shape!r}."
        )
    if not all(isinstance(d, int) and not isinstance(d, bool) for d in batch_shape):
        raise TypeError(
            f"fs.structure.{method}: batch_shape must be a tuple of ints, got {batch_shape!r}."
        )
    if any(d < 0 for d in batch_shape):
        raise ValueError(
            f"fs.structure.{method}: batch_shape must have sizes >= 0, got {tuple(batch_shape)}."
        )
    return tuple(batch_shape)


def _broadcast_copy(x: Any, batch: tuple[int, ...]) -> Any:
    """A detached copy of a tensor broadcast to ``batch``; anything else as it is."""
    if not isinstance(x, Tensor):
        return x
    return x.detach().expand(*batch, *x.shape).clone()


def _with_path(path: str, error: Exception) -> Exception:
    where = f"leaf {path!r}" if path else "the root"
    return type(error)(f"fs.structure: {where}: {error}")


def _call(
    fn: Callable[[AbstractStructure[Any], Any], Any],
    leaf: AbstractStructure[Any],
    x: Any,
    path: str,
) -> Any:
    """``fn(leaf, x)``, with a leaf's ValueError/TypeError/NotSupported naming the tree path."""
    try:
        return fn(leaf, x)
    except (ValueError, TypeError, NotSupported) as error:
        if type(error) not in (ValueError, TypeError, NotSupported):
            raise
        raise _with_path(path, error) from None


@dataclasses.dataclass(frozen=True)
class _Slot:
    """Where a structured leaf's draw goes, while :meth:`StructureTree.init` orders them."""

    index: int


class _Step(NamedTuple):
    """One leaf of a plan: its path, structure (None: passes through) and group.

    ``group`` is the layout of the tensors that form a factored raw, None for one input leaf.
    """

    path: str
    structure: AbstractStructure[Any] | None
    group: Any


class _Plan(NamedTuple):
    steps: tuple[_Step, ...]
    out_layout: Any


def _node(tree: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        tree = tree[key]
    return tree


def _plan_uncached(rules: tuple[Rule, ...], layout: Any, raw: bool, compiling: bool) -> _Plan:
    """Match ``rules`` to a tree of this optree ``layout``: what to call on which leaves.

    With ``raw=True`` the tree holds raw inputs, so a tuple node governed by a factored
    structure is one leaf (its tensors are grouped).
    """
    leaf_paths = [tuple(p) for p in optree.treespec_paths(layout)]
    nodes: dict[tuple[Any, ...], None] = {}
    for path in leaf_paths:
        for cut in range(len(path) + 1):
            nodes.setdefault(path[:cut])
    order = tuple(nodes)
    governed = dict(
        zip(order, (resolve_uncached if compiling else resolve)(rules, order), strict=True)
    )
    # Which rules name a factored structure: only their nodes can be one raw of several tensors.
    factored = [leaf is not None and raw and is_factored(raw_form_of(leaf)) for _, leaf in rules]
    skeleton = (
        optree.tree_unflatten(layout, list(range(layout.num_leaves))) if any(factored) else None
    )
    steps: list[_Step] = []
    grouped: list[Any] = []
    i = 0
    while i < len(leaf_paths):
        path = leaf_paths[i]
        group_at = None
        for cut in range(len(path)) if skeleton is not None else ():
            rule = governed[path[:cut]][1]
            if (
                rule is not None
                and factored[rule]
                and isinstance(_node(skeleton, path[:cut]), tuple)
            ):
                group_at = path[:cut]
                break
        if group_at is None:
            dotted, rule = governed[path]
            steps.append(_Step(dotted, rules[rule][1] if rule is not None else None, None))
            i += 1
        else:
            dotted, rule = governed[group_at]
            node = _node(skeleton, group_at)
            group = optree.tree_structure(node, none_is_leaf=True, namespace="torch")
            steps.append(_Step(dotted, rules[rule][1] if rule is not None else None, group))
            grouped.append(group_at)
            i += group.num_leaves
    out_layout = layout
    if skeleton is not None and grouped:
        for at in grouped:
            skeleton = _replaced(skeleton, at, 0)
        out_layout = optree.tree_structure(skeleton, none_is_leaf=True, namespace="torch")
    return _Plan(tuple(steps), out_layout)


def _replaced(tree: Any, path: tuple[Any, ...], value: Any) -> Any:
    """``tree`` with the node at ``path`` replaced by ``value`` (containers rebuilt by optree)."""
    if not path:
        return value
    children, metadata, entries, unflatten = optree.tree_flatten_one_level(
        tree, none_is_leaf=True, namespace="torch"
    )
    i = list(entries).index(path[0])
    children = [*children[:i], _replaced(children[i], path[1:], value), *children[i + 1 :]]
    return unflatten(metadata, children)


_plan = functools.lru_cache(maxsize=1024)(_plan_uncached)


@dataclasses.dataclass(frozen=True)
class StructureTree:
    """A structure over a whole parameter pytree; build it with :func:`structure`.

    It has the five methods of a leaf structure, each taking and returning a pytree of the same
    shape as its input. Leaves that no rule names, and leaves whose rule is ``None``, pass
    through unchanged (``init`` copies them, broadcast to ``batch_shape``).

    Attributes:
      rules: ``(dotted key, structure or None)`` pairs; the key ``""`` is the root.
    """

    rules: tuple[Rule, ...]

    def _map(
        self,
        tree: Any,
        fn: Callable[[AbstractStructure[Any], Any], Any],
        passthrough: Callable[[Any], Any],
        raw: bool = False,
    ) -> Any:
        """``fn(structure, leaf)`` on governed leaves, ``passthrough(leaf)`` on the others."""
        leaves, layout = optree.tree_flatten(tree, none_is_leaf=True, namespace="torch")
        compiling = torch.compiler.is_compiling()
        plan = (_plan_uncached if compiling else _plan)(self.rules, layout, raw, compiling)
        results, i = [], 0
        for path, governing, group in plan.steps:
            if group is None:
                leaf, i = leaves[i], i + 1
            else:
                leaf = optree.tree_unflatten(group, leaves[i : i + group.num_leaves])
                i += group.num_leaves
            if governing is None:
                results.append(passthrough(leaf))
                continue
            if group is None and not isinstance(leaf, Tensor):
                raise _with_path(
                    path,
                    TypeError(
                        f"{governing!r} needs a tensor, got {type(leaf).__name__}: {leaf!r}."
                    ),
                )
            results.append(_call(fn, governing, leaf, path))
        return optree.tree_unflatten(plan.out_layout, results)

    def _governing(self, tree: Any) -> tuple[list[Any], list[Any], list[str], Any]:
        """The leaves of a value tree, their governing structures (or None), paths and layout.

        For ``fs.optim``, which walks several trees of one layout side by side.
        """
        leaves, layout = optree.tree_flatten(tree, none_is_leaf=True, namespace="torch")
        compiling = torch.compiler.is_compiling()
        plan = (_plan_uncached if compiling else _plan)(self.rules, layout, False, compiling)
        structures = [step.structure for step in plan.steps]
        paths = [step.path for step in plan.steps]
        return leaves, structures, paths, plan.out_layout

    def resolve(self, tree: Any) -> Any:
        """The structure that governs each leaf of ``tree`` (None where it passes through).

        A tree of the same shape as ``tree`` (a factored raw's tuple counts as one leaf, as in
        :meth:`apply`): print it to see what the spec matched.

        Args:
          tree: a pytree (of tensors, or of anything: only its layout matters).

        Returns:
          The pytree of structures and ``None``.

        Example:
          >>> s = fs.structure({"*.weight": fs.Diagonal()})
          >>> s.resolve({"0.weight": torch.ones(2, 2), "0.bias": torch.ones(2)})
          {'0.weight': Diagonal(packed=False), '0.bias': None}
        """
        _, layout = optree.tree_flatten(tree, none_is_leaf=True, namespace="torch")
        plan = _plan(self.rules, layout, True, False)
        return optree.tree_unflatten(plan.out_layout, [step.structure for step in plan.steps])

    # ---------------------------------------------------------------------------- the methods
    def apply(self, raw: Any) -> Any:
        """Map a raw pytree to its structured form (same tree shape).

        Args:
          raw: a pytree of raw tensors (dicts, lists, tuples).

        Returns:
          The pytree of structured tensors; unstructured leaves are returned as they are.

        Example:
          >>> s = fs.structure({"w": fs.UpperTriangular(), "b": None})
          >>> s.apply({"w": torch.ones(2, 2), "b": torch.ones(2)})["w"]
          tensor([[1., 1.],
                  [0., 1.]])
        """
        return self._map(raw, lambda s, x: s.apply(x), lambda x: x, raw=True)

    def inverse(self, value: Any) -> Any:
        """A right inverse of :meth:`apply` over a pytree of members.

        Args:
          value: a pytree of structured tensors.

        Returns:
          A raw pytree; unstructured leaves are returned as they are.
        """
        return self._map(value, lambda s, x: s.inverse(x), lambda x: x)

    def project(self, value: Any) -> Any:
        """The nearest member for every structured leaf.

        Args:
          value: a pytree of tensors.

        Returns:
          The projected pytree; unstructured leaves are returned as they are.
        """
        return self._map(value, lambda s, x: s.project(x), lambda x: x)

    def contains(self, value: Any, atol: float | None = None, rtol: float | None = None) -> Any:
        """Membership for every structured leaf, as a pytree of bool tensors of batch shape.

        Unstructured leaves give a scalar ``True`` tensor.

        Args:
          value: a pytree of tensors.
          atol: absolute tolerance (default: dtype-aware, see ``fs.default_tolerances``).
          rtol: relative tolerance (default: dtype-aware).

        Returns:
          A pytree of bool tensors.

        Example:
          >>> s = fs.structure(fs.Diagonal())
          >>> s.contains([torch.eye(2), torch.ones(2, 2)])
          [tensor(True), tensor(False)]
        """

        def everywhere(x: Any) -> Any:
            device = x.device if isinstance(x, Tensor) else None
            return torch.ones((), dtype=torch.bool, device=device)

        return self._map(value, lambda s, x: s.contains(x, atol, rtol), everywhere)

    def init(
        self,
        like: Any,
        *,
        batch_shape: Sequence[int] = (),
        generator: torch.Generator | None = None,
    ) -> Any:
        """A random raw pytree for parameters shaped like ``like``.

        Args:
          like: a pytree of tensors (for example ``dict(model.named_parameters())``) giving
            each leaf's structured shape, dtype and device.
          batch_shape: leading dims to add to every leaf (an ensemble's size, say).
          generator: the random generator for the structured leaves.

        Returns:
          A raw pytree of plain tensors (no ``requires_grad``). Structured leaves are drawn by
          their structure's ``init``, in the order of their paths (one generator gives one
          answer, whatever order the pytree flattens in: torch's dicts flatten in sorted key
          order until a ``torch.func`` transform has run, in insertion order after); other
          tensor leaves are copies of ``like``, broadcast to ``batch_shape``.

        Example:
          >>> s = fs.structure({"weight": fs.Orthogonal()})
          >>> raw = s.init(dict(torch.nn.Linear(3, 3).named_parameters()), batch_shape=(5,))
          >>> {k: tuple(v.shape) for k, v in raw.items()}
          {'weight': (5, 3, 3), 'bias': (5, 3)}
        """
        batch = _batch_shape(batch_shape, "init")
        pending: list[tuple[AbstractStructure[Any], Tensor]] = []

        def defer(s: AbstractStructure[Any], x: Tensor) -> _Slot:
            s._check_value(x, "init_like", "value")  # errors name the path, as the draws would
            pending.append((s, x))
            return _Slot(len(pending) - 1)

        slotted = self._map(like, defer, lambda x: _broadcast_copy(x, batch))
        _, structures, paths, _ = self._governing(like)
        governed = [path for path, s in zip(paths, structures, strict=True) if s is not None]
        drawn: list[Any] = [None] * len(pending)
        for i in sorted(range(len(pending)), key=lambda i: governed[i]):
            s, x = pending[i]
            drawn[i] = s.init_like(x.detach().expand(*batch, *x.shape), generator=generator)
        return optree.tree_map(
            lambda leaf: drawn[leaf.index] if isinstance(leaf, _Slot) else leaf,
            slotted,
            none_is_leaf=True,
            namespace="torch",
        )

    def raw_from(self, value: Any, *, batch_shape: Sequence[int] = ()) -> Any:
        """A raw pytree whose image is the nearest structured version of ``value``.

        For each structured leaf ``inverse(project(leaf))``; other tensors are copied. This is
        how to start training from an existing model: ``structure.raw_from(dict(
        model.named_parameters()))``.

        Args:
          value: a pytree of tensors (parameters of an existing model, say).
          batch_shape: leading dims to broadcast every leaf to (an ensemble starting from one
            model).

        Returns:
          A raw pytree of plain tensors (no autograd history).

        Example:
          >>> s = fs.structure({"weight": fs.UpperTriangular()})
          >>> raw = s.raw_from(dict(torch.nn.Linear(2, 2).named_parameters()), batch_shape=(4,))
          >>> raw["weight"].shape, bool((raw["weight"].tril(-1) == 0).all())
          (torch.Size([4, 2, 2]), True)
        """
        batch = _batch_shape(batch_shape, "raw_from")
        return self._map(
            value,
            lambda s, x: map_raw(lambda t: _broadcast_copy(t, batch), s.raw_from(x)),
            lambda x: _broadcast_copy(x, batch),
        )

    def forward_and_log_det(self, raw: Any, *, batch_dims: int = 0) -> tuple[Any, Tensor]:
        """:meth:`apply`, and the log-det Jacobian of the whole tree's map.

        The sum of every structured leaf's ``forward_and_log_det`` (unstructured leaves are
        the identity, log-det 0), each summed over all its dims but the first ``batch_dims``:
        the log-density correction of a model whose parameters are sampled in raw space.

        Args:
          raw: a pytree of raw tensors.
          batch_dims: leading dims every leaf shares that stay (an ensemble or chain dim);
            0 under ``vmap``, which hides them.

        Returns:
          ``(value tree, log_det)``, ``log_det`` of the shared leading ``batch_dims`` dims.

        Raises:
          NotSupported: a structured leaf's map is not a bijection (the message names its path).

        Example:
          >>> s = fs.structure({"cov": fs.PositiveDefinite(packed=True), "scale": fs.Positive()})
          >>> raw = {"cov": torch.zeros(3), "scale": torch.zeros(4)}
          >>> value, log_det = s.forward_and_log_det(raw)
          >>> value["cov"].shape, log_det.shape
          (torch.Size([2, 2]), torch.Size([]))
        """
        if isinstance(batch_dims, bool) or not isinstance(batch_dims, int) or batch_dims < 0:
            raise TypeError(
                f"fs.structure: forward_and_log_det: batch_dims must be an int >= 0, got "
                f"{batch_dims!r}."
            )
        log_dets: list[Tensor] = []

        def forward(structure: AbstractStructure[Any], x: Any) -> Any:
            value, log_det = structure.forward_and_log_det(x)
            if log_det.dim() < batch_dims:
                raise ValueError(
                    f"batch_dims={batch_dims} but this leaf's log-det has shape "
                    f"{tuple(log_det.shape)}"
                )
            log_dets.append(log_det.reshape(*log_det.shape[:batch_dims], -1).sum(-1))
            return value

        values = self._map(raw, forward, lambda x: x, raw=True)
        if not log_dets:
            return values, torch.zeros(())
        total = log_dets[0]
        for log_det in log_dets[1:]:
            total = total + log_det
        return values, total

    def __repr__(self) -> str:
        body = ", ".join(f"{key!r}: {leaf!r}" for key, leaf in self.rules)
        return f"fs.structure({{{body}}})"


def structure(spec: Spec) -> StructureTree:
    """Turn a spec into a structure over whole parameter pytrees.

    Args:
      spec: a leaf structure (applied to every leaf), or a dict / list / tuple (nested, or a
        flat dict of dotted names as ``named_parameters()`` gives) whose leaves are structures
        or ``None`` (pass through). Keys may be glob patterns: ``*`` matches any run of
        characters, dots included, and ``?`` any one character. A deeper key beats a shallower
        one, an exact key beats a pattern; a key that matches nothing is an error.

    Returns:
      A :class:`StructureTree`. Passing one returns it unchanged.

    Raises:
      TypeError: the spec holds something other than structures, ``None`` and containers.

    Example:
      >>> s = fs.structure({"*.weight": fs.Diagonal(), "1.weight": fs.UpperTriangular()})
      >>> raw = {"0.weight": torch.ones(2, 2), "1.weight": torch.ones(2, 2)}
      >>> s.apply(raw)["1.weight"]
      tensor([[1., 1.],
              [0., 1.]])
    """
    if isinstance(spec, StructureTree):
        return spec
    return StructureTree(tuple(spec_rules(spec, lambda x: isinstance(x, AbstractStructure))))
