"""fs.structure: spec matching over raw pytrees, as torch.func sees them."""

import copy
import pickle

import pytest
import torch
from torch.func import functional_call, grad, vmap

import functional_struct as fs


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Tanh(), torch.nn.Linear(4, 4))


def test_flat_dict_of_dotted_names():
    params = dict(_model().named_parameters())
    s = fs.structure({"0.weight": fs.Orthogonal(), "2.weight": fs.UpperTriangular()})
    out = s.apply(params)
    assert list(out) == list(params)
    assert fs.Orthogonal().contains(out["0.weight"])
    assert torch.equal(out["2.weight"], torch.triu(params["2.weight"]))
    assert out["0.bias"] is params["0.bias"]


def test_nested_and_flat_specs_agree():
    raw = {"a": {"w": torch.ones(3, 3), "b": torch.ones(3)}, "c": [torch.ones(2, 2)]}
    nested = fs.structure({"a": {"w": fs.Diagonal()}, "c": [fs.LowerTriangular()]})
    flat = fs.structure({"a.w": fs.Diagonal(), "c.0": fs.LowerTriangular()})
    for s in (nested, flat):
        out = s.apply(raw)
        assert torch.equal(out["a"]["w"], torch.eye(3))
        assert torch.equal(out["c"][0], torch.tril(torch.ones(2, 2)))
        assert out["a"]["b"] is raw["a"]["b"]


def test_glob_patterns_deeper_and_exact_keys_win():
    raw = {
        "enc.0.weight": torch.ones(2, 2),
        "enc.1.weight": torch.ones(2, 2),
        "head.weight": torch.ones(2, 2),
        "enc.0.bias": torch.ones(2),
    }
    s = fs.structure(
        {"*.weight": fs.Diagonal(), "enc.1.weight": fs.UpperTriangular(), "head.weight": None}
    )
    out = s.apply(raw)
    assert torch.equal(out["enc.0.weight"], torch.eye(2))
    assert torch.equal(out["enc.1.weight"], torch.triu(torch.ones(2, 2)))
    assert torch.equal(out["head.weight"], torch.ones(2, 2))


def test_structure_on_a_container_applies_to_each_leaf():
    raw = {"block": {"a": torch.ones(2, 2), "b": torch.ones(3, 3)}, "other": torch.ones(2, 2)}
    out = fs.structure({"block": fs.Diagonal()}).apply(raw)
    assert torch.equal(out["block"]["b"], torch.eye(3))
    assert torch.equal(out["other"], torch.ones(2, 2))


def test_a_leaf_structure_applies_to_every_leaf():
    out = fs.structure(fs.UpperTriangular()).apply([torch.ones(2, 2), (torch.ones(3, 3),)])
    assert isinstance(out, list)
    assert isinstance(out[1], tuple)
    assert torch.equal(out[1][0], torch.triu(torch.ones(3, 3)))
    assert torch.equal(fs.structure(fs.Diagonal()).apply(torch.ones(2, 2)), torch.eye(2))


def test_key_that_matches_nothing_is_an_error_with_a_hint():
    s = fs.structure({"0.wieght": fs.Orthogonal()})
    with pytest.raises(ValueError, match=r"'0\.wieght' \(did you mean '0\.weight'\?\) matched no"):
        s.apply(dict(_model().named_parameters()))


def test_conflicting_patterns_are_an_error():
    s = fs.structure({"*.weight": fs.Diagonal(), "0.*": fs.UpperTriangular()})
    with pytest.raises(ValueError, match="'0.weight' is matched by the patterns"):
        s.apply({"0.weight": torch.ones(2, 2)})


def test_leaf_errors_name_the_path():
    s = fs.structure({"0.weight": fs.Orthogonal()})
    with pytest.raises(
        ValueError,
        match=r"fs.structure: leaf '0.weight': Orthogonal\(method="
        r"'cayley'\)\.apply: raw needs a square or tall matrix .* got shape \(3, 5\)",
    ):
        s.apply({"0.weight": torch.ones(3, 5)})
    expected = r"leaf 'w': Diagonal\(packed=False\) needs a tensor, got NoneType"
    with pytest.raises(TypeError, match=expected):
        fs.structure({"w": fs.Diagonal()}).apply({"w": None})


@pytest.mark.parametrize("spec", [torch.nn.Linear(2, 2), "Orthogonal", {"w": 3}, {("a",): None}])
def test_bad_specs(spec):
    with pytest.raises(TypeError, match="fs.structure: spec"):
        fs.structure(spec)


def test_init_shapes_dtypes_batch_and_passthrough_copies():
    model = _model().double()
    params = dict(model.named_parameters())
    s = fs.structure({"*.weight": fs.Orthogonal()})
    raw = s.init(params, batch_shape=(5,), generator=torch.Generator().manual_seed(0))
    assert raw["0.weight"].shape == (5, 4, 4)
    assert raw["0.weight"].dtype == torch.float64
    assert not raw["0.weight"].requires_grad
    assert torch.equal(raw["0.bias"], params["0.bias"].detach().expand(5, 4))
    assert raw["0.bias"].data_ptr() != params["0.bias"].data_ptr()
    again = s.init(params, batch_shape=(5,), generator=torch.Generator().manual_seed(0))
    assert all(torch.equal(raw[k], again[k]) for k in raw)


def test_contains_project_inverse_over_trees():
    s = fs.structure({"w": fs.PositiveDefinite(), "u": fs.UpperTriangular()})
    value = {
        "w": torch.randn(3, 3, 3, dtype=torch.float64),
        "u": torch.randn(3, 3),
        "b": torch.randn(3),
    }
    projected = s.project(value)
    inside = s.contains(projected)
    assert inside["w"].shape == (3,)
    assert inside["w"].all()
    assert inside["u"]
    assert inside["b"]
    assert not s.contains(value)["u"]
    back = s.apply(s.inverse(projected))
    torch.testing.assert_close(back["w"], projected["w"])
    assert back["b"] is projected["b"]


def test_vmap_grad_functional_call_through_the_tree():
    model = _model()
    s = fs.structure({"0.weight": fs.Orthogonal(), "2.weight": fs.LowerTriangular()})
    raw = s.init(dict(model.named_parameters()), batch_shape=(6,))
    x = torch.randn(6, 10, 4)

    def loss(r, xb):
        return functional_call(model, s.apply(r), (xb,)).square().mean()

    grads = vmap(grad(loss))(raw, x)
    assert grads["2.weight"].shape == (6, 4, 4)
    assert torch.equal(grads["2.weight"], torch.tril(grads["2.weight"]))
    # agrees with one member at a time
    one = grad(loss)({k: v[1] for k, v in raw.items()}, x[1])
    torch.testing.assert_close(grads["0.weight"][1], one["0.weight"])


def test_compile_fullgraph_of_tree_apply():
    torch._dynamo.reset()
    s = fs.structure({"*.weight": fs.UpperTriangular(), "0.bias": None})
    raw = {"0.weight": torch.randn(3, 3), "0.bias": torch.randn(3), "1.weight": torch.randn(3, 3)}
    out = torch.compile(s.apply, fullgraph=True)(raw)
    assert all(torch.equal(out[k], s.apply(raw)[k]) for k in raw)


def test_trees_compare_hash_pickle_and_repr():
    a = fs.structure({"*.weight": fs.Orthogonal(), "0.bias": None})
    b = fs.structure({"*.weight": fs.Orthogonal(), "0.bias": None})
    assert a == b
    assert hash(a) == hash(b)
    assert pickle.loads(pickle.dumps(a)) == a
    assert copy.deepcopy(a) == a
    assert fs.structure(a) is a
    assert repr(a) == "fs.structure({'*.weight': Orthogonal(method='cayley'), '0.bias': None})"


def test_raw_trees_are_plain_and_round_trip_through_torch_save(tmp_path):
    s = fs.structure({"*.weight": fs.PositiveDefinite()})
    raw = s.init(dict(_model().named_parameters()), batch_shape=(2,))
    torch.save(raw, tmp_path / "raw.pt")
    loaded = torch.load(tmp_path / "raw.pt", weights_only=True)
    assert all(torch.equal(loaded[k], raw[k]) for k in raw)


def test_a_module_key_governs_its_entries_in_flat_and_nested_trees_alike():
    spec = fs.structure({"0": fs.Diagonal()})
    flat = spec.apply({"0.weight": torch.ones(2, 2), "1.bias": torch.ones(2)})
    nested = spec.apply({"0": {"weight": torch.ones(2, 2)}, "1.bias": torch.ones(2)})
    assert torch.equal(flat["0.weight"], torch.eye(2))
    assert torch.equal(nested["0"]["weight"], torch.eye(2))
    assert torch.equal(flat["1.bias"], torch.ones(2))
    # A deeper key, or a pattern that reaches the entry, beats the module's key.
    deeper = fs.structure({"0": fs.Diagonal(), "0.weight": fs.UpperTriangular()})
    assert torch.equal(
        deeper.apply({"0.weight": torch.ones(2, 2)})["0.weight"], torch.ones(2, 2).triu()
    )
    pattern = fs.structure({"0": fs.Diagonal(), "*.weight": fs.UpperTriangular()})
    assert torch.equal(
        pattern.apply({"0.weight": torch.ones(2, 2)})["0.weight"], torch.ones(2, 2).triu()
    )
    # "1" is not a prefix of "10.weight" at a dot boundary: no match, and the error says so.
    with pytest.raises(ValueError, match="'1' matched no entry"):
        fs.structure({"1": fs.Diagonal()}).apply({"10.weight": torch.ones(2, 2)})


def test_defaultdict_trees_keep_their_type():
    import collections

    tree = collections.defaultdict(list, {"w": torch.ones(2, 2)})
    spec = fs.structure({"w": fs.Diagonal()})
    for _ in range(2):  # the first call walks the tree, the second replays the plan
        out = spec.apply(tree)
        assert isinstance(out, collections.defaultdict)
        assert out.default_factory is list
        assert torch.equal(out["w"], torch.eye(2))


def test_resolve_shows_what_the_spec_matched():
    s = fs.structure({"*.weight": fs.LowRank(1), "1.weight": None})
    raw = {
        "0.weight": (torch.zeros(3, 1), torch.zeros(2, 1)),
        "0.bias": torch.zeros(3),
        "1.weight": torch.zeros(2, 2),
    }
    assert s.resolve(raw) == {"0.weight": fs.LowRank(1), "0.bias": None, "1.weight": None}
    one = fs.structure({"*.weight": fs.LowRank(1)})
    assert one.resolve({"0.weight": torch.zeros(3, 2)}) == {"0.weight": fs.LowRank(1)}


def test_plans_are_cached_by_value_not_in_a_module_dict():
    from functional_struct import _tree

    assert not [name for name, v in vars(_tree).items() if isinstance(v, dict) and name.isupper()]
    _tree._plan.cache_clear()
    tree = {"a": torch.ones(2, 2), "b": torch.ones(2)}
    fs.structure({"a": fs.Diagonal()}).apply(tree)
    fs.structure({"a": fs.Diagonal()}).apply(tree)  # an equal tree: the same plan
    assert _tree._plan.cache_info().hits == 1


def test_frozen_first_in_a_chain_keeps_the_value_in_a_tree():
    weight = torch.tensor([[1.0, 2.0], [3.0, 0.5]])
    s = fs.structure({"layer.weight": fs.Chain(fs.Frozen(), fs.Positive())})
    raw = s.init({"layer.weight": weight, "layer.bias": torch.ones(2)}, batch_shape=(3,))
    out = s.apply(raw)["layer.weight"]
    assert out.shape == (3, 2, 2)
    torch.testing.assert_close(out, weight.expand(3, 2, 2))
    grad = torch.func.grad(lambda r: s.apply(r)["layer.weight"].sum())(raw)["layer.weight"]
    assert torch.equal(grad, torch.zeros_like(grad))


def test_a_tree_compiles_with_one_code_path_and_gives_the_eager_values():
    s = fs.structure({"w": fs.LowRank(1), "v": fs.UpperTriangular(packed=True)})
    raw = {"w": (torch.randn(4, 3, 1), torch.randn(4, 2, 1)), "v": torch.randn(4, 6), "b": None}
    compiled = torch.compile(s.apply, fullgraph=True)
    for key, value in s.apply(raw).items():
        got = compiled(raw)[key]
        assert got is None if value is None else torch.allclose(got, value)


def test_init_draws_in_path_order_whatever_order_dicts_flatten_in():
    """torch's dicts flatten in sorted key order until a torch.func transform has run, in
    insertion order after: one generator must give one raw either way."""
    import subprocess
    import sys

    script = (
        "import torch, functional_struct as fs\n"
        "from torch.func import grad\n"
        "tree = fs.structure({'q': fs.Orthogonal(), 'l': fs.LowRank(2)})\n"
        "like = {'q': torch.empty(3, 3), 'l': torch.empty(3, 3)}\n"
        "a = tree.init(like, generator=torch.Generator().manual_seed(0))\n"
        "grad(lambda x: x.sum())(torch.ones(2))\n"
        "b = tree.init(like, generator=torch.Generator().manual_seed(0))\n"
        "assert torch.equal(a['q'], b['q'])\n"
        "assert all(torch.equal(x, y) for x, y in zip(a['l'], b['l']))\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
