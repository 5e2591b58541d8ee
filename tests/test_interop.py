"""Module interop: start from weights, write back, parametrize; and why vmap needs functional."""

import pytest
import torch
from torch.func import functional_call, stack_module_state
from torch.nn.utils import parametrize

import functional_struct as fs


def test_raw_from_an_existing_module_then_back_into_it_with_load_state_dict():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 4))
    structure = fs.structure({"0.weight": fs.Orthogonal(), "1.weight": fs.UpperTriangular()})
    params = dict(model.named_parameters())
    raw = structure.raw_from(params)
    structured = structure.apply(raw)
    # the nearest members: the polar factor, and the upper triangle
    q = structured["0.weight"]
    torch.testing.assert_close(q, fs.Orthogonal().project(params["0.weight"].detach()))
    assert torch.equal(structured["1.weight"], params["1.weight"].detach().triu())
    assert torch.equal(raw["0.bias"], params["0.bias"].detach())
    # write the structured weights into the module for inference
    model.load_state_dict(structured)
    torch.testing.assert_close(model[0].weight.detach(), q)
    x = torch.randn(3, 4)
    torch.testing.assert_close(model(x), functional_call(model, structured, (x,)))


def test_raw_from_with_a_batch_starts_an_ensemble_from_one_model():
    model = torch.nn.Linear(3, 3)
    structure = fs.structure({"weight": fs.PositiveDefinite()})
    raw = structure.raw_from(dict(model.named_parameters()), batch_shape=(5,))
    assert raw["weight"].shape == (5, 3, 3)
    assert raw["bias"].shape == (5, 3)
    assert not raw["weight"].requires_grad
    assert structure.contains(structure.apply(raw))["weight"].all()


@pytest.mark.parametrize(
    "structure", [fs.Orthogonal(), fs.PositiveDefinite(), fs.UpperTriangular(), fs.Toeplitz()]
)
def test_parametrize_registration_projects_and_trains(structure):
    torch.manual_seed(1)
    layer = torch.nn.Linear(4, 4)
    parametrize.register_parametrization(layer, "weight", fs.as_parametrization(structure))
    assert structure.contains(layer.weight.detach())
    optimizer = torch.optim.Adam(layer.parameters(), lr=0.01)
    for _ in range(5):
        optimizer.zero_grad()
        layer(torch.randn(8, 4)).square().mean().backward()
        optimizer.step()
    assert structure.contains(layer.weight.detach())


def test_parametrize_with_a_packed_raw_changes_the_stored_shape():
    layer = torch.nn.Linear(3, 3)
    parametrize.register_parametrization(
        layer, "weight", fs.as_parametrization(fs.UpperTriangular(packed=True)), unsafe=True
    )
    assert layer.parametrizations.weight.original.shape == (6,)
    assert torch.equal(layer.weight, layer.weight.triu())


def test_why_functional_stack_module_state_rejects_parametrized_modules():
    modules = [torch.nn.Linear(3, 3) for _ in range(2)]
    for m in modules:
        parametrize.register_parametrization(m, "weight", fs.as_parametrization(fs.Diagonal()))
    with pytest.raises(RuntimeError, match="same class"):
        stack_module_state(modules)


def test_why_functional_cached_parametrization_is_stale_under_functional_call():
    layer = torch.nn.Linear(3, 3, bias=False)
    parametrize.register_parametrization(layer, "weight", fs.as_parametrization(fs.Diagonal()))
    new = {"parametrizations.weight.original": 2 * torch.eye(3)}
    with parametrize.cached():
        _ = layer.weight
        stale = functional_call(layer, new, (torch.eye(3),))
    fresh = functional_call(layer, new, (torch.eye(3),))
    torch.testing.assert_close(fresh, 2 * torch.eye(3))
    assert not torch.allclose(stale, fresh)


def test_as_parametrization_needs_a_leaf_structure():
    with pytest.raises(TypeError, match="as_parametrization: needs a leaf structure"):
        fs.as_parametrization(fs.structure({"w": fs.Diagonal()}))


def test_factored_structures_as_parametrizations():
    """LowRank's pair and Sum's nested tuple become original0, original1, ... on the module,
    and the layer starts from the nearest member of the set (a Frozen sum: the weight itself)."""
    torch.manual_seed(0)
    for structure, count in ((fs.LowRank(2), 2), (fs.Sum(fs.LowRank(1), fs.Frozen()), 3)):
        layer = torch.nn.Linear(5, 5)
        start = structure.project(layer.weight.detach())
        parametrize.register_parametrization(
            layer, "weight", fs.as_parametrization(structure), unsafe=True
        )
        weight = layer.parametrizations.weight
        originals = [getattr(weight, f"original{i}") for i in range(count)]
        assert not hasattr(weight, f"original{count}")
        assert len(originals) == count
        torch.testing.assert_close(layer.weight.detach(), start, atol=1e-4, rtol=1e-4)
        layer.weight.square().sum().backward()
        trained = originals[:2]  # LowRank's pair; Sum's Frozen part gets no gradient
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in trained)
        assert all(p.grad is None for p in originals[2:])
    low = fs.as_parametrization(fs.LowRank(2))
    raw = low.right_inverse(torch.randn(6, 4))
    assert [tuple(t.shape) for t in raw] == [(6, 2), (4, 2)]
    assert int(torch.linalg.matrix_rank(low(*raw))) == 2
