"""Chain and Frozen."""

import pytest
import torch

import functional_struct as fs


def test_chain_positive_diagonal_is_a_positive_diagonal():
    c = fs.Chain(fs.Positive(), fs.Diagonal())
    out = c.apply(torch.randn(3, 4, 4))
    assert torch.equal(out, torch.diag_embed(out.diagonal(dim1=-2, dim2=-1)))
    assert (out.diagonal(dim1=-2, dim2=-1) > 0).all()
    assert c.contains(out).all()
    assert not c.contains(-out).any()
    assert not c.contains(out + 1).any()


def test_chain_with_a_floor_uses_the_round_trip_for_membership():
    c = fs.Chain(fs.Positive(min=1.0), fs.Diagonal())
    member = torch.diag(torch.tensor([1.5, 2.0]))
    assert c.contains(member)
    assert not c.contains(torch.diag(torch.tensor([0.5, 2.0])))
    assert torch.equal(
        c.project(torch.diag(torch.tensor([0.5, 2.0]))), torch.diag(torch.tensor([1.0, 2.0]))
    )


def test_chain_of_packed_first_part():
    c = fs.Chain(fs.Symmetric(packed=True), fs.Positive())
    out = c.apply(torch.randn(6))
    assert out.shape == (3, 3)
    assert (out > 0).all()
    assert torch.equal(out, out.mT)


def test_chain_rejects_non_structures_and_nothing():
    with pytest.raises(ValueError, match="Chain: needs at least one structure"):
        fs.Chain()
    with pytest.raises(TypeError, match="Chain: part 1 must be a structure"):
        fs.Chain(fs.Positive(), torch.nn.Linear(2, 2))


def test_chain_dtypes_are_the_intersection():
    assert fs.Chain(fs.PositiveDefinite(), fs.Positive()).dtypes == (torch.float32, torch.float64)
    with pytest.raises(TypeError, match="float16"):
        fs.Chain(fs.PositiveDefinite(), fs.Positive()).apply(torch.zeros(2, 2, dtype=torch.float16))


def test_frozen_blocks_gradients_and_keeps_its_value_in_trees():
    model = torch.nn.Linear(3, 3)
    s = fs.structure({"weight": fs.Orthogonal(), "bias": fs.Frozen()})
    raw = s.init(dict(model.named_parameters()), batch_shape=(2,))
    assert torch.equal(raw["bias"], model.bias.detach().expand(2, 3))
    grads = torch.func.grad(
        lambda r: torch.func.functional_call(model, s.apply(r), (torch.ones(3),)).sum()
    )({k: v[0] for k, v in raw.items()})
    assert torch.equal(grads["bias"], torch.zeros(3))
    assert grads["weight"].abs().sum() > 0


def test_sum_contains_judges_the_split_at_the_scale_of_the_matrix():
    """Splitting rounds at the scale of the whole matrix: this float32 member, entries up to
    6e4, comes back 2e-3 off on its 0.01 entry, which an entrywise tolerance called a
    non-member (the thorough hypothesis profile found such a draw)."""
    s = fs.Sum(fs.Symmetric(), fs.SkewSymmetric())
    sym = torch.tensor([[1.0, 3e4], [3e4, 2.0]])
    skew = torch.tensor([[0.0, -3e4 + 0.01], [3e4 - 0.01, 0.0]])
    value = s.apply((sym, skew))
    assert s.contains(value)
    # Still a tolerance relative to the matrix, not a free pass: a symmetric off-diagonal part
    # of 10 is 3e-4 of the scale, beyond float32's default rtol of 1e-4.
    s = fs.Sum(fs.Diagonal(), fs.SkewSymmetric())
    member = s.apply((sym, skew))
    assert s.contains(member)
    assert not s.contains(member + torch.tensor([[0.0, 10.0], [10.0, 0.0]]))
