"""Checkpoints: raw and structured trees through torch.save; structures as values."""

import copy
import pickle
import re
from pathlib import Path

import optree
import pytest
import torch

import functional_struct as fs
from functional_struct import testing

ENTRIES = [pytest.param(e, id=e.id) for e in testing.CATALOG]


@pytest.mark.parametrize("entry", ENTRIES)
def test_structures_pickle_compare_equal_and_hash(entry):
    s = entry.structure
    clone = pickle.loads(pickle.dumps(s))
    assert clone is not s
    assert clone == s
    assert hash(clone) == hash(s)
    assert copy.deepcopy(s) == s
    assert fs.structure({"a.*": s}) == pickle.loads(pickle.dumps(fs.structure({"a.*": s})))


@pytest.mark.parametrize("entry", ENTRIES)
def test_raw_and_structured_trees_round_trip_weights_only(entry, tmp_path):
    structure = fs.structure({"layer.weight": entry.structure})
    dtype = torch.float32 if torch.float32 in entry.structure.dtypes else torch.complex64
    like = {
        "layer.weight": torch.empty(entry.core_shapes[-1], dtype=dtype),
        "layer.bias": torch.ones(2),
    }
    raw = structure.init(like, batch_shape=(3,), generator=torch.Generator().manual_seed(0))
    for name, tree in [("raw", raw), ("structured", structure.apply(raw))]:
        path = tmp_path / f"{name}.pt"
        torch.save(tree, path)
        loaded = torch.load(path, weights_only=True)
        assert loaded.keys() == tree.keys()
        # Factored raws are tuples of tensors, and come back as tuples.
        same = optree.tree_map(torch.equal, loaded, tree, namespace="torch")
        assert all(optree.tree_leaves(same, namespace="torch"))
    # the loaded raw gives the same structured weights
    assert torch.equal(
        structure.apply(loaded_raw := torch.load(tmp_path / "raw.pt", weights_only=True))[
            "layer.weight"
        ],
        structure.apply(raw)["layer.weight"],
    )
    del loaded_raw


def test_different_options_are_different_values():
    assert fs.UpperTriangular() != fs.UpperTriangular(1)
    assert fs.UpperTriangular() != fs.LowerTriangular()
    assert len({fs.Diagonal(), fs.Diagonal(), fs.Diagonal(packed=True)}) == 2


def test_an_invertible_pickled_by_the_previous_version_loads_and_applies():
    """An Invertible pickled with only floor and relative_floor in its state (no
    PositiveDefinite of its own), as older checkpoints hold it: it must still load."""
    old = (
        b"\x80\x04\x95]\x00\x00\x00\x00\x00\x00\x00\x8c\x17functional_struct._rank\x94\x8c\n"
        b"Invertible\x94\x93\x94)\x81\x94}\x94(\x8c\x05floor\x94G?\x1a6\xe2\xeb\x1cC-\x8c\x0e"
        b"relative_floor\x94G?PbM\xd2\xf1\xa9\xfcub."
    )
    s = pickle.loads(old)
    assert s == fs.Invertible(floor=1e-4)
    raw = fs.Invertible(floor=1e-4).init((2, 3, 3), generator=torch.Generator().manual_seed(0))
    assert torch.equal(s.apply(raw), fs.Invertible(floor=1e-4).apply(raw))


DATA = Path(__file__).parent / "data"

# Hyperparameters added since 0.1.0, with defaults that keep the 0.1.0 behavior; an unpickled
# 0.1.0 structure takes the default (equal and hash-equal), and only its repr shows the field.
_ADDED_SINCE_0_1_0 = re.compile(
    r"^((?:PositiveDefinite|CholeskyFactor|Correlation|SpecialOrthogonal|Simplex)\(.*?)"
    r"(?:, )?packed=False\)$"
)


def _as_0_1_0_repr(name: str) -> str:
    return _ADDED_SINCE_0_1_0.sub(r"\1)", name)


def test_checkpoints_written_by_version_0_1_0_load_and_apply_the_same():
    """Files written by functional_struct 0.1.0 (commit 154cadc), for every catalog entry: the
    pickled structures and trees, and a float64 raw tree with its image saved by torch.save."""
    with open(DATA / "structures_0_1_0.pkl", "rb") as f:
        saved = pickle.load(f)
    weights = torch.load(DATA / "checkpoint_0_1_0.pt", weights_only=True)
    assert len(saved) == len(weights) >= 50
    catalog = {_as_0_1_0_repr(repr(e.structure)): e.structure for e in testing.CATALOG}
    for name, structure, tree in saved:
        assert _as_0_1_0_repr(repr(structure)) == name
        if name in catalog:
            assert structure == catalog[name]
            assert hash(structure) == hash(catalog[name])
        assert tree == fs.structure({"layer.weight": structure})
        raw, value = weights[name]["raw"], weights[name]["value"]
        again = tree.apply(raw)
        assert again.keys() == value.keys()
        torch.testing.assert_close(
            again["layer.weight"], value["layer.weight"], atol=1e-12, rtol=1e-12
        )
        assert torch.equal(again["layer.bias"], value["layer.bias"])
