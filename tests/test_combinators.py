"""Chain, Sum and Frozen."""

import pytest
import torch

import functional_struct as fs
from functional_struct import testing


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


@pytest.mark.parametrize(
    "chain",
    [
        fs.Chain(fs.Positive(), fs.Diagonal(packed=True)),
        fs.Chain(fs.Bounded(-1.0, 2.0), fs.Toeplitz(packed=True)),
        fs.Chain(fs.Positive(min=1.0), fs.Symmetric(packed=True)),
    ],
    ids=repr,
)
def test_chain_with_a_packed_later_part_takes_its_coordinates(chain):
    """The raw is the packed part's coordinates, mapped elementwise first: a positive diagonal
    is n numbers, not an n x n matrix of which n are used."""
    n = 4
    raw = chain.init((2, n, n), generator=torch.Generator().manual_seed(0))
    assert raw.shape == (2, *chain.structures[-1].raw_shape((n, n)))
    testing.check_laws(
        chain, (n, n), laws=[law for law in testing.laws_for(chain) if law != "compile"]
    )


def test_chain_of_packed_first_part():
    c = fs.Chain(fs.Symmetric(packed=True), fs.Positive())
    out = c.apply(torch.randn(6))
    assert out.shape == (3, 3)
    assert (out > 0).all()
    assert torch.equal(out, out.mT)


def test_chain_rejects_non_structures_and_nothing():
    with pytest.raises(ValueError, match="Chain: structures must be one or more structures"):
        fs.Chain()
    with pytest.raises(TypeError, match=r"Chain: structures\[1\] must be a structure"):
        fs.Chain(fs.Positive(), torch.nn.Linear(2, 2))


def test_chain_dtypes_are_the_intersection():
    assert fs.Chain(fs.CholeskyFactor(), fs.Positive()).dtypes == (torch.float32, torch.float64)
    with pytest.raises(TypeError, match="float16"):
        fs.Chain(fs.CholeskyFactor(), fs.Positive()).apply(torch.zeros(2, 2, dtype=torch.float16))


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


# --------------------------------------------------------------------------- Sum: what it takes

_REFUSED_SUMS = {
    "low rank + positive diagonal": lambda: fs.Sum(
        fs.LowRank(2), fs.Chain(fs.Positive(), fs.Diagonal())
    ),
    "PSD + positive diagonal": lambda: fs.Sum(
        fs.PositiveSemidefinite(rank=3), fs.Chain(fs.Positive(), fs.Diagonal())
    ),
    "banded + low rank": lambda: fs.Sum(fs.Banded(1, 1), fs.LowRank(1)),
    "orthogonal + orthogonal": lambda: fs.Sum(fs.Orthogonal(), fs.Orthogonal()),
    "triangle + low rank": lambda: fs.Sum(fs.UpperTriangular(), fs.LowRank(1)),
}


@pytest.mark.parametrize("make", _REFUSED_SUMS.values(), ids=_REFUSED_SUMS.keys())
def test_sum_refuses_parts_it_cannot_split(make):
    """Block coordinate descent cannot split these: it leaves most of their own images outside
    the set (LowRank(2) + positive diagonal at 4 x 4: 96-100% of 200; the triangle +
    LowRank(1) fails check_laws). So Sum refuses them and says why."""
    with pytest.raises(
        ValueError,
        match=r"Sum: structures must be parts it can split .*: parts that are all linear",
    ):
        make()


_LINEAR_SUMS = (
    (fs.Circulant(), fs.UpperTriangular()),
    (fs.Toeplitz(), fs.Hankel()),
    (fs.Symmetric(), fs.UpperTriangular(diagonal=1)),
    (fs.Banded(1, 1), fs.Circulant(), fs.Diagonal()),
    (fs.Toeplitz(packed=True), fs.SkewSymmetric(packed=True)),
)


def _own_image_rates(parts, n, count, dtype, seed=0):
    s = fs.Sum(*parts)
    gen = torch.Generator().manual_seed(seed)
    value = s.apply(s.init((count, n, n), generator=gen, dtype=dtype))
    inside = s.contains(value)
    back = s.apply(s.inverse(value))
    scale = value.abs().amax((-2, -1))
    round_trip = (back - value).abs().amax((-2, -1)) <= 1e-4 * scale + 1e-6
    projected = s.project(value)
    fixed = (projected - value).abs().amax((-2, -1)) <= 1e-4 * scale + 1e-6
    return s, inside.double().mean(), round_trip.double().mean(), fixed.double().mean()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("parts", _LINEAR_SUMS, ids=lambda p: " + ".join(map(repr, p)))
def test_linear_sum_contains_inverts_and_fixes_its_own_images(parts, dtype):
    """Conjugate gradients split every pair here exactly; block coordinate descent (200 rounds)
    would leave Circulant + UpperTriangular members off by 3e-3 of the matrix at 16 x 16."""
    for n in (2, 5, 16):
        _, inside, round_trip, fixed = _own_image_rates(parts, n, 50, dtype)
        assert (inside, round_trip, fixed) == (1.0, 1.0, 1.0), n


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("parts", _LINEAR_SUMS, ids=lambda p: " + ".join(map(repr, p)))
def test_linear_sum_own_images_sweep(parts, dtype):
    """At least 99.9% of 1000 own images are members at every n from 2 to 16, and all of 300
    at n = 23 and 32 and of 100 at n = 64 (fewer there to keep CI's slow run short)."""
    for n in (*range(2, 17), 23, 32, 64):
        count = 1000 if n <= 16 else 300 if n <= 32 else 100
        _, inside, round_trip, fixed = _own_image_rates(parts, n, count, dtype, seed=n)
        assert min(inside, round_trip, fixed) >= 0.999, (n, inside, round_trip, fixed)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_linear_sum_rejects_dense_matrices_and_projects_into_the_set(dtype):
    """A sum of lower dimension than all matrices: random dense matrices are not in it, and
    their projections are members, fixed by a second projection."""
    gen = torch.Generator().manual_seed(3)
    for parts in ((fs.Toeplitz(), fs.Hankel()), (fs.Circulant(), fs.Diagonal())):
        s = fs.Sum(*parts)
        dense = torch.randn(200, 6, 6, generator=gen, dtype=dtype)
        assert not s.contains(dense).any()
        projected = s.project(dense)
        assert s.contains(projected).all()
        torch.testing.assert_close(s.project(projected), projected)


def test_sum_values_never_raise():
    """Zeros, 1e30 entries (float32) and NaN/Inf go through every method without raising."""
    s = fs.Sum(fs.Symmetric(), fs.SkewSymmetric())
    huge = torch.full((2, 3, 3), 1e30).triu()
    assert s.contains(huge).all()
    assert s.contains(torch.zeros(2, 3, 3)).all()
    torch.testing.assert_close(s.apply(s.inverse(huge)), huge)
    bad = torch.zeros(3, 3)
    bad[0, 1] = float("nan")
    bad[1, 0] = float("inf")
    assert not s.contains(bad)
    s.project(bad), s.inverse(bad)
    lora = fs.Sum(fs.Frozen(), fs.LowRank(1))
    assert not lora.contains(bad)
    assert lora.contains(huge).all()


def test_sum_repr_shows_its_hyperparameters():
    assert repr(fs.Sum(fs.Diagonal(), iterations=7)) == "Sum(Diagonal(packed=False), iterations=7)"


def test_sum_apply_compiles_once_for_every_shape():
    """A set of shapes in apply's shape check made dynamic compilation specialize: four
    graphs for four sizes. Now one."""
    graphs = []

    def backend(gm, inputs):
        graphs.append(gm)
        return gm.forward

    s = fs.Sum(fs.Symmetric(), fs.SkewSymmetric())
    torch._dynamo.reset()
    f = torch.compile(lambda r: s.apply(r), backend=backend, dynamic=True)
    for n in (3, 4, 5, 6):
        f((torch.randn(2, n, n), torch.randn(2, n, n)))
    assert len(graphs) == 1


# ------------------------------------------------------------------------ Sum with Frozen: LoRA


def test_lora_raw_from_puts_the_value_in_frozen_and_trains_the_adapter():
    """All-zero LowRank factors would be a saddle with zero gradient: the adapter must train."""
    s = fs.Sum(fs.Frozen(), fs.LowRank(1))
    weight = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
    frozen, (left, right) = s.raw_from(weight)
    torch.testing.assert_close(frozen, weight)
    assert torch.equal(left @ right.mT, torch.zeros(4, 3))
    target = torch.randn(4, 3, generator=torch.Generator().manual_seed(1))
    g = torch.func.grad(lambda r: (s.apply(r) - target).square().sum())((frozen, (left, right)))
    assert torch.equal(g[0], torch.zeros(4, 3))
    assert g[1][0].abs().sum() > 0
    assert s.contains(weight)
    assert torch.equal(s.project(weight), weight)


def test_frozen_sum_and_chain_keep_their_value_in_a_tree():
    """Structure-tree init drew a random Frozen part inside Sum and Chain."""
    model = torch.nn.Linear(3, 4)
    tree = fs.structure(
        {"weight": fs.Sum(fs.Frozen(), fs.LowRank(1)), "bias": fs.Chain(fs.Frozen(), fs.Positive())}
    )
    with torch.no_grad():
        model.bias.abs_()
    params = dict(model.named_parameters())
    raw = tree.init(params, batch_shape=(2,), generator=torch.Generator().manual_seed(0))
    value = tree.apply(raw)
    torch.testing.assert_close(value["weight"], params["weight"].detach().expand(2, 4, 3))
    torch.testing.assert_close(value["bias"], params["bias"].detach().expand(2, 4))
    left, right = raw["weight"][1]
    assert torch.equal(left, torch.zeros(2, 4, 1))
    assert right.abs().sum() > 0


# -------------------------------------------------------------------------------- Chain


_REFUSED_CHAINS = {
    "diagonal then simplex": lambda: fs.Chain(fs.Diagonal(), fs.Simplex()),
    "simplex then diagonal": lambda: fs.Chain(fs.Simplex(), fs.Diagonal()),
    "simplex then symmetric": lambda: fs.Chain(fs.Simplex(), fs.Symmetric()),
    "columns then triangle": lambda: fs.Chain(fs.UnitNorm(dim=-2), fs.UpperTriangular()),
    "skew after positive": lambda: fs.Chain(fs.Positive(), fs.SkewSymmetric()),
    "factored later": lambda: fs.Chain(fs.Positive(), fs.LowRank(1)),
}


@pytest.mark.parametrize(
    "make",
    [
        lambda: fs.Chain(fs.Orthogonal(), fs.Positive()),
        lambda: fs.Chain(fs.PositiveDefinite(), fs.Positive()),
        lambda: fs.Chain(fs.Chain(fs.Positive(), fs.Diagonal()), fs.Positive()),
    ],
    ids=["orthogonal", "positive-definite", "nested chain"],
)
def test_chain_refuses_parts_after_one_whose_inverse_is_nan_outside(make):
    """Chained after these, project would give NaN (or a NaN/finite mix) for finite values."""
    with pytest.raises(ValueError, match="inverse_outside = 'project'"):
        make()


@pytest.mark.parametrize("make", _REFUSED_CHAINS.values(), ids=_REFUSED_CHAINS.keys())
def test_chain_refuses_parts_whose_inverse_leaves_the_image(make):
    """These chains would say False for 100 of 100 of their own images (or, packed, return a
    (3, 3, 3) value with no error), so they raise at construction."""
    with pytest.raises(
        ValueError, match=r"Chain: structures\[1\] .*Later parts must be elementwise"
    ):
        make()


@pytest.mark.parametrize(
    "chain",
    [
        fs.Chain(fs.Diagonal(), fs.Positive()),
        fs.Chain(fs.Bounded(-1.0, 2.0), fs.Toeplitz()),
        fs.Chain(fs.Positive(), fs.Symmetric()),
        fs.Chain(fs.CholeskyFactor(), fs.Bounded(-2.0, 2.0)),
        fs.Chain(fs.Positive(min=1.0), fs.Banded(1, 0), fs.Positive()),
    ],
    ids=repr,
)
def test_accepted_chains_contain_their_own_images(chain):
    gen = torch.Generator().manual_seed(0)
    value = chain.apply(chain.init((100, 4, 4), generator=gen, dtype=torch.float64))
    assert chain.contains(value).all()
    torch.testing.assert_close(chain.project(value), value)
    arbitrary = 3 * torch.randn(100, 4, 4, generator=gen, dtype=torch.float64)
    assert chain.contains(chain.project(arbitrary)).all()
    assert not chain.contains(
        value + 0.1 * torch.randn(100, 4, 4, generator=gen, dtype=torch.float64)
    ).any()


@pytest.mark.parametrize(
    "structure",
    [
        fs.Chain(fs.Positive(), fs.Diagonal()),
        fs.Chain(fs.Diagonal(), fs.Positive()),
        fs.Chain(fs.Symmetric(packed=True), fs.Positive()),
        fs.Chain(fs.Positive(), fs.Diagonal(packed=True)),
        fs.Sum(fs.Symmetric(), fs.SkewSymmetric()),
        fs.Sum(fs.Frozen(), fs.LowRank(1)),
    ],
    ids=repr,
)
def test_empty_batches_go_through_every_method(structure):
    """Chain.contains crashed on a batch of zero matrices (reshape with -1)."""
    empty = torch.zeros(0, 3, 3)
    assert structure.contains(empty).shape == (0,)
    assert structure.project(empty).shape == (0, 3, 3)
    raw = structure.inverse(empty)
    assert structure.apply(raw).shape == (0, 3, 3)
    assert structure.apply(structure.init((0, 3, 3))).shape == (0, 3, 3)
