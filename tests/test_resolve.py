"""The spec resolver (``_resolve``): plain Python, cached by value, no torch."""

import ast
import inspect

import pytest

from functional_struct import _resolve

A, B, C = "A", "B", "C"  # stand-ins for structures: the resolver only compares them


def _nodes(*leaf_paths):
    nodes = {}
    for path in leaf_paths:
        for cut in range(len(path) + 1):
            nodes.setdefault(path[:cut])
    return tuple(nodes)


def _governing(rules, *leaf_paths):
    nodes = _nodes(*leaf_paths)
    out = _resolve.resolve_uncached(rules, nodes)
    return {path: (rules[i][1] if i is not None else None) for path, i in out if path}


def test_the_module_imports_no_torch():
    tree = ast.parse(inspect.getsource(_resolve))
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in node.names
    } | {
        node.module.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
    }
    assert "torch" not in imported
    assert "optree" not in imported


def test_exact_beats_glob_beats_prefix_and_children_inherit():
    rules = (("0", A), ("*.weight", B), ("1.weight", C))
    got = _governing(rules, ("0", "weight"), ("0", "bias"), ("1", "weight"), ("1", "bias"))
    assert got["0.weight"] == B  # a pattern at the node beats the parent's key
    assert got["0.bias"] == A  # inherited
    assert got["1.weight"] == C  # exact
    assert got["1.bias"] is None


def test_flat_and_nested_trees_match_the_same_rules():
    rules = (("encoder", A),)
    flat = _governing(rules, ("encoder.layer.weight",))
    nested = _governing(rules, ("encoder", "layer", "weight"))
    assert flat["encoder.layer.weight"] == nested["encoder.layer.weight"] == A


def test_disagreeing_patterns_and_typos_are_errors_with_hints():
    with pytest.raises(ValueError, match="matched by the patterns"):
        _governing((("*.weight", A), ("0.*", B)), ("0", "weight"))
    with pytest.raises(ValueError, match=r"'0.wieght' \(did you mean '0.weight'\?\)"):
        _governing((("0.wieght", A),), ("0", "weight"))


def test_resolve_is_cached_by_value():
    _resolve.resolve.cache_clear()
    rules, nodes = (("a", A),), _nodes(("a",), ("b",))
    first = _resolve.resolve(rules, nodes)
    assert _resolve.resolve(tuple(rules), tuple(nodes)) is first
    assert _resolve.resolve.cache_info().hits == 1


def test_spec_rules_flatten_nested_specs_and_refuse_bad_entries():
    def is_leaf(x):
        return x in (A, B)

    assert _resolve.spec_rules({"a": [A, None], "b": {"c": B}}, is_leaf) == [
        ("a.0", A),
        ("a.1", None),
        ("b.c", B),
    ]
    with pytest.raises(TypeError, match="non-empty strings or ints"):
        _resolve.spec_rules({True: A}, is_leaf)
    with pytest.raises(TypeError, match="must be a structure"):
        _resolve.spec_rules({"a": 3}, is_leaf)


@pytest.mark.parametrize(
    ("pattern", "text", "match"),
    [("*", "a.b.c", True), ("a.?", "a.b", True), ("a.?", "a.bc", False), ("*.w", "x.w.y", False)],
)
def test_glob_match(pattern, text, match):
    assert _resolve.glob_match(pattern, text) is match
