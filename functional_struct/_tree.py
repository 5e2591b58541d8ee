"""Structure trees: ``fs.structure(spec)`` pairs spec leaves with the leaves of raw pytrees.

A spec becomes a flat tuple of *rules* ``(key, structure_or_None)``, where ``key`` is a dotted
path (``"0.weight"``, ``"encoder.*.weight"``; ``""`` is the root). A raw tree is walked as
``torch.func`` sees it (dicts, lists and tuples are containers; tensors, ``None`` and everything
else are leaves); each node gets the dotted path that ``named_parameters()`` would give it, so a
flat dict ``{"0.weight": t}`` and a nested ``{"0": {"weight": t}}`` match the same rules. The
rule of the deepest matching node governs a leaf, an exact key beats a glob at the same node,
and a rule that matches nothing is an error (it catches typos).
"""

from __future__ import annotations

import collections
import dataclasses
import difflib
from collections.abc import Callable, Sequence
from typing import Any

import optree
import torch
from torch import Tensor

from ._structure import AbstractStructure

__all__ = ["StructureTree", "structure"]

Spec = Any
Rule = tuple[str, AbstractStructure | None]


def _is_glob(key: str) -> bool:
    return "*" in key or "?" in key


def _glob_match(pattern: str, text: str) -> bool:
    """Shell-style match where ``*`` is any run of characters (dots included), ``?`` any one.

    Pure Python on purpose: ``re``/``fnmatch`` would break ``torch.compile(fullgraph=True)``
    of a tree method, which traces this walk.
    """
    p = t = 0
    star, resume = -1, 0
    while t < len(text):
        if p < len(pattern) and pattern[p] in ("?", text[t]):
            p, t = p + 1, t + 1
        elif p < len(pattern) and pattern[p] == "*":
            star, resume, p = p, t, p + 1
        elif star >= 0:
            p, resume = star + 1, resume + 1
            t = resume
        else:
            return False
    return all(c == "*" for c in pattern[p:])


def _join(prefix: str, key: object) -> str:
    return f"{prefix}.{key}" if prefix else str(key)


def _spec_rules(spec: Spec, prefix: str = "") -> list[Rule]:
    if spec is None or isinstance(spec, AbstractStructure):
        return [(prefix, spec)]
    if isinstance(spec, dict):
        rules: list[Rule] = []
        for key, sub in spec.items():
            if not isinstance(key, (str, int)) or isinstance(key, bool) or key == "":
                raise TypeError(
                    f"fs.structure: spec keys must be non-empty strings or ints, got {key!r}"
                    + (f" under {prefix!r}." if prefix else ".")
                )
            rules += _spec_rules(sub, _join(prefix, key))
        return rules
    if isinstance(spec, (list, tuple)):
        return [rule for i, sub in enumerate(spec) for rule in _spec_rules(sub, _join(prefix, i))]
    where = f"spec entry {prefix!r}" if prefix else "spec"
    raise TypeError(
        f"fs.structure: {where} must be a structure (such as fs.Orthogonal()), None, or a "
        f"dict / list / tuple of those, got {type(spec).__name__}: {spec!r}."
    )


def _children(node: Any) -> list[tuple[object, Any]] | None:
    """The (key, child) pairs of a container as torch.func flattens it; None for a leaf."""
    if isinstance(node, dict):
        return list(node.items())
    if isinstance(node, (list, tuple)):
        return list(enumerate(node))
    return None


def _rebuild(node: Any, children: list[Any]) -> Any:
    if isinstance(node, collections.defaultdict):
        return type(node)(node.default_factory, zip(node.keys(), children, strict=True))
    if isinstance(node, dict):
        return type(node)(zip(node.keys(), children, strict=True))
    if isinstance(node, tuple) and hasattr(node, "_fields"):  # namedtuple
        return type(node)(*children)
    return type(node)(children)


def _broadcast_copy(x: Any, batch: tuple[int, ...]) -> Any:
    """Detached copies of tensors (one, or a factored raw's tuple), broadcast to ``batch``.

    Anything that is not a tensor comes back as it is.
    """
    if isinstance(x, tuple):
        return tuple(_broadcast_copy(part, batch) for part in x)
    if not isinstance(x, Tensor):
        return x
    return x.detach().expand(*batch, *x.shape).clone()


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


def _layout(tree: Any) -> Any:
    return optree.tree_structure(tree, none_is_leaf=True, namespace="torch")


# Remembered matches, per (structure tree, optree layout of the input, reads raw trees):
# (((path, structure or None, layout of a factored raw or None), ...), layout of the output).
Step = tuple[str, AbstractStructure | None, Any]
_PLANS: dict[tuple[Any, Any, bool], tuple[tuple[Step, ...], Any]] = {}
_MAX_PLANS = 1024


def _call(
    fn: Callable[[AbstractStructure, Any], Any], leaf: AbstractStructure, x: Any, path: str
) -> Any:
    """``fn(leaf, x)``, with a leaf's ValueError/TypeError re-raised naming the tree path."""
    try:
        return fn(leaf, x)
    except (ValueError, TypeError) as error:
        if type(error) not in (ValueError, TypeError):
            raise
        raise _with_path(path, error) from None


def _with_path(path: str, error: Exception) -> Exception:
    where = f"leaf {path!r}" if path else "the root"
    return type(error)(f"fs.structure: {where}: {error}")


def _steps(
    paths: list[tuple[Any, ...]], governed: dict[tuple[Any, ...], Step]
) -> tuple[Step, ...] | None:
    """The walk's record in optree's leaf order, a factored raw's leaves grouped into one step.

    None when some optree leaf has no recorded node (a container that only optree knows).
    """
    steps: list[Step] = []
    i = 0
    while i < len(paths):
        path = paths[i]
        cut = next((c for c in range(len(path), -1, -1) if path[:c] in governed), None)
        if cut is None:
            return None
        step = governed[path[:cut]]
        steps.append(step)
        i += 1 if step[2] is None else step[2].num_leaves
    return tuple(steps)


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

    # -------------------------------------------------------------------------------- matching
    def _rule_at(self, path: str, depth: int) -> tuple[int | None, int | None]:
        """The rule governing the node at ``path``, and the module-key rule that prefixes it.

        The governing rule is the exact key, else a pattern, else the longest module key that
        is a dotted prefix of ``path``; None where there is none. In a nested tree the module's
        own node matches its key; in a flat one no node does, so the prefix rule counts as used
        even where a deeper key overrides it.
        """
        exact = glob = prefix = None
        for i, (key, leaf) in enumerate(self.rules):
            if key == path:
                exact = i
            elif (
                key
                and not _is_glob(key)
                and path.startswith(key + ".")
                and (prefix is None or len(key) > len(self.rules[prefix][0]))
            ):
                prefix = i  # a module's key governs its dotted entries in a flat tree
            elif _is_glob(key) and depth > 0 and _glob_match(key, path):
                if glob is not None and self.rules[glob][1] != leaf:
                    raise ValueError(
                        f"fs.structure: leaf {path!r} is matched by the patterns "
                        f"{self.rules[glob][0]!r} ({self.rules[glob][1]!r}) and {key!r} "
                        f"({leaf!r}); add an exact key for it."
                    )
                glob = i if glob is None else glob
        if exact is not None:
            return exact, prefix
        return (glob if glob is not None else prefix), prefix

    def _map(
        self,
        tree: Any,
        fn: Callable[[AbstractStructure, Any], Any],
        passthrough: Callable[[Any], Any],
        raw: bool = False,
    ) -> Any:
        """``fn(structure, leaf)`` on structured leaves, ``passthrough(leaf)`` on the others.

        With ``raw=True`` the tree holds raw inputs, so a factored structure's node (a tuple of
        tensors) is one leaf. The first call for a tree layout walks it and matches the rules
        (``_walk``); the match is then remembered per (structure tree, layout), so later calls
        flatten with optree and call the leaf maps directly: well under a microsecond per leaf
        of overhead. While ``torch.compile`` traces, the walk itself runs (plain Python that
        dynamo follows).
        """
        if torch.compiler.is_compiling():
            return self._walk(tree, fn, passthrough, raw)
        leaves, layout = optree.tree_flatten(tree, none_is_leaf=True, namespace="torch")
        plan = _PLANS.get((self, layout, raw))
        if plan is None:
            governed: dict[tuple[Any, ...], Step] = {}
            out = self._walk(tree, fn, passthrough, raw, governed)
            steps = _steps(optree.tree_paths(tree, none_is_leaf=True, namespace="torch"), governed)
            if steps is not None:  # else a container only optree knows
                if len(_PLANS) >= _MAX_PLANS:
                    _PLANS.clear()
                grouped = any(group is not None for _, _, group in steps)
                _PLANS[(self, layout, raw)] = (steps, _layout(out) if grouped else layout)
            return out
        steps, out_layout = plan
        results, i = [], 0
        for path, governing, group in steps:
            if group is None:
                leaf, i = leaves[i], i + 1
            else:
                leaf = optree.tree_unflatten(group, leaves[i : i + group.num_leaves])
                i += group.num_leaves
            if governing is None:
                results.append(passthrough(leaf))
            elif group is None and not isinstance(leaf, Tensor):
                return self._walk(tree, fn, passthrough, raw)  # raises the walk's error
            else:
                results.append(_call(fn, governing, leaf, path))
        return optree.tree_unflatten(out_layout, results)

    def _walk(
        self,
        tree: Any,
        fn: Callable[[AbstractStructure, Any], Any],
        passthrough: Callable[[Any], Any],
        raw: bool = False,
        governed: dict[tuple[Any, ...], Step] | None = None,
    ) -> Any:
        """Match the rules node by node and map the leaves; record each leaf's structure."""
        used = [False] * len(self.rules)
        seen: list[str] = []

        def walk(
            node: Any, keys: tuple[Any, ...], path: str, governing: AbstractStructure | None
        ) -> Any:
            rule, prefix = self._rule_at(path, len(keys))
            if prefix is not None:
                used[prefix] = True
            if rule is not None:
                used[rule] = True
                governing = self.rules[rule][1]
            seen.append(path)
            factored_raw = (
                raw
                and isinstance(node, tuple)
                and governing is not None
                and governing.raw_names is not None
            )
            children = None if factored_raw else _children(node)
            if children is not None:
                return _rebuild(
                    node,
                    [walk(c, (*keys, k), _join(path, k), governing) for k, c in children],
                )
            if governed is not None:
                governed[keys] = (path, governing, _layout(node) if factored_raw else None)
            if governing is None:
                return passthrough(node)
            if not (factored_raw or isinstance(node, Tensor)):
                raise _with_path(
                    path,
                    TypeError(
                        f"{governing!r} needs a tensor, got {type(node).__name__}: {node!r}."
                    ),
                )
            return _call(fn, governing, node, path)

        out = walk(tree, (), "", None)
        unused = [self.rules[i][0] for i, u in enumerate(used) if not u]
        if unused:
            names = [p for p in seen if p]
            hints = {k: difflib.get_close_matches(k, names, n=1) for k in unused}
            detail = "; ".join(
                f"{k!r}" + (f" (did you mean {hints[k][0]!r}?)" if hints[k] else "") for k in unused
            )
            raise ValueError(
                f"fs.structure: spec key{'s' if len(unused) > 1 else ''} {detail} matched no "
                f"entry of the tree. The tree has: {', '.join(map(repr, names)) or 'no entries'}."
            )
        return out

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
          their structure's ``init``; other tensor leaves are copies of ``like``, broadcast to
          ``batch_shape``.

        Example:
          >>> s = fs.structure({"weight": fs.Orthogonal()})
          >>> raw = s.init(dict(torch.nn.Linear(3, 3).named_parameters()), batch_shape=(5,))
          >>> {k: tuple(v.shape) for k, v in raw.items()}
          {'weight': (5, 3, 3), 'bias': (5, 3)}
        """
        batch = _batch_shape(batch_shape, "init")

        def draw(s: AbstractStructure, x: Tensor) -> Tensor:
            return s._init_like(x, batch, generator)

        return self._map(like, draw, lambda x: _broadcast_copy(x, batch))

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
            lambda s, x: _broadcast_copy(s.raw_from(x), batch),
            lambda x: _broadcast_copy(x, batch),
        )

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
    return StructureTree(tuple(_spec_rules(spec)))
