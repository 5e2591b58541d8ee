"""The spec resolver: which rule governs each node of a tree. Plain Python, no torch.

A spec becomes a flat tuple of *rules* ``(key, leaf)``, where ``key`` is a dotted path
(``"0.weight"``, ``"encoder.*.weight"``; ``""`` is the root) and ``leaf`` a structure or None.
A tree's nodes are named by the dotted path that ``named_parameters()`` would give them, so a
flat dict ``{"0.weight": t}`` and a nested ``{"0": {"weight": t}}`` match the same rules.

At each node the governing rule is the exact key, else a glob pattern (``*`` any run of
characters, dots included; ``?`` any one), else the longest key that is a dotted prefix of the
node's path (a module's key governs its entries in a flat tree); a node without a rule inherits
its parent's. Two patterns that disagree on one node, and a rule that matches nothing (a typo,
with a "did you mean" hint), are errors. :func:`resolve` is cached by value: rules and paths
are tuples of strings and hashable structures.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Callable
from typing import Any

__all__ = ["Rule", "glob_match", "resolve", "spec_rules"]

Rule = tuple[str, Any]
"""``(dotted key, structure or None)``."""

Path = tuple[Any, ...]
"""The keys from the root to a node (dict keys, list and tuple indices)."""


def glob_match(pattern: str, text: str) -> bool:
    """Shell-style match where ``*`` is any run of characters (dots included), ``?`` any one.

    Plain Python rather than ``re``/``fnmatch``, which ``torch.compile(fullgraph=True)`` cannot
    trace through.

    Example:
      >>> glob_match("encoder.*.weight", "encoder.0.attn.weight"), glob_match("?.bias", "10.bias")
      (True, False)
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


def _is_glob(key: str) -> bool:
    return "*" in key or "?" in key


def join(prefix: str, key: object) -> str:
    """The dotted path of ``key`` under ``prefix``."""
    return f"{prefix}.{key}" if prefix else str(key)


def spec_rules(spec: Any, is_leaf: Callable[[Any], bool], prefix: str = "") -> list[Rule]:
    """Flatten a spec (a leaf, None, or dicts / lists / tuples of them) into rules.

    Args:
      spec: the spec.
      is_leaf: whether an object is a leaf structure.
      prefix: the dotted path of ``spec`` itself.

    Raises:
      TypeError: a key that is not a non-empty string or int, or an entry that is neither a
        structure, None nor a container.
    """
    if spec is None or is_leaf(spec):
        return [(prefix, spec)]
    if isinstance(spec, dict):
        rules: list[Rule] = []
        for key, sub in spec.items():
            if not isinstance(key, (str, int)) or isinstance(key, bool) or key == "":
                raise TypeError(
                    f"fs.structure: spec keys must be non-empty strings or ints, got {key!r}"
                    + (f" under {prefix!r}." if prefix else ".")
                )
            rules += spec_rules(sub, is_leaf, join(prefix, key))
        return rules
    if isinstance(spec, (list, tuple)):
        return [r for i, sub in enumerate(spec) for r in spec_rules(sub, is_leaf, join(prefix, i))]
    where = f"spec entry {prefix!r}" if prefix else "spec"
    raise TypeError(
        f"fs.structure: {where} must be a structure (such as fs.Orthogonal()), None, or a "
        f"dict / list / tuple of those, got {type(spec).__name__}: {spec!r}."
    )


class _Index:
    """The rules arranged for lookups: plain keys by value, patterns in order."""

    def __init__(self, rules: tuple[Rule, ...]) -> None:
        self.rules = rules
        self.plain = {key: i for i, (key, _) in enumerate(rules) if not _is_glob(key)}
        self.globs = [(i, key, leaf) for i, (key, leaf) in enumerate(rules) if _is_glob(key)]

    def rule_at(self, path: str, depth: int) -> tuple[int | None, int | None]:
        """The rule governing the node at ``path``, and the module-key rule that prefixes it.

        In a nested tree a module's own node matches its key; in a flat one no node does, so
        the prefix rule counts as used even where a deeper key overrides it.
        """
        exact = self.plain.get(path)
        prefix = None
        cut = path.rfind(".")
        while cut > 0:  # the longest plain key that is a dotted prefix of the path
            prefix = self.plain.get(path[:cut])
            if prefix is not None:
                break
            cut = path.rfind(".", 0, cut)
        glob = None
        if depth > 0:
            for i, key, leaf in self.globs:
                if glob_match(key, path):
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


def resolve_uncached(
    rules: tuple[Rule, ...], nodes: tuple[Path, ...]
) -> tuple[tuple[str, int | None], ...]:
    """For each node (parents before children), its dotted path and governing rule's index.

    Args:
      rules: the spec's rules.
      nodes: every node's path in the tree, each node after its parent; ``()`` is the root.

    Returns:
      ``(dotted path, index into rules or None)`` per node, in the order of ``nodes``.

    Raises:
      ValueError: two patterns disagree on a node, or a rule matches no node.
    """
    used = [False] * len(rules)
    index = _Index(rules)
    governed: dict[Path, tuple[str, int | None]] = {}
    for node in nodes:
        parent = governed.get(node[:-1], ("", None)) if node else ("", None)
        path = join(parent[0], node[-1]) if node else ""
        rule, prefix = index.rule_at(path, len(node))
        if prefix is not None:
            used[prefix] = True
        if rule is not None:
            used[rule] = True
        governed[node] = (path, rule if rule is not None else parent[1])
    unused = [rules[i][0] for i, u in enumerate(used) if not u]
    if unused:
        names = [path for path, _ in governed.values() if path]
        hints = {k: difflib.get_close_matches(k, names, n=1) for k in unused}
        detail = "; ".join(
            f"{k!r}" + (f" (did you mean {hints[k][0]!r}?)" if hints[k] else "") for k in unused
        )
        raise ValueError(
            f"fs.structure: spec key{'s' if len(unused) > 1 else ''} {detail} matched no "
            f"entry of the tree. The tree has: {', '.join(map(repr, names)) or 'no entries'}."
        )
    return tuple(governed[node] for node in nodes)


resolve = functools.lru_cache(maxsize=1024)(resolve_uncached)
""":func:`resolve_uncached`, remembered per ``(rules, nodes)`` (both hashable values)."""
