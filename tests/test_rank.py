"""The rank family: rank bounds by singular values, conditioning for extreme raw, det = 1,
spectral-norm bounds, factored raws in trees and under torch.func."""

import pytest
import torch
from _helpers import GEN, _normal
from torch.func import functional_call, grad, vmap

import functional_struct as fs


@pytest.mark.parametrize(("n", "m", "r"), [(6, 4, 1), (8, 8, 3), (5, 9, 5)])
def test_low_rank_has_at_most_its_rank_and_r_times_n_plus_m_numbers(n, m, r):
    s = fs.LowRank(r)
    left, right = s.init((10, n, m), generator=GEN().manual_seed(1), dtype=torch.float64)
    assert left.numel() + right.numel() == 10 * r * (n + m)
    sv = torch.linalg.svdvals(s.apply((left, right)))
    assert (sv[:, r:] < 1e-12 * sv[:, :1]).all()
    assert (sv[:, r - 1] > 1e-6).all()


def test_low_rank_project_is_the_truncated_svd():
    a = _normal(4, 6, 5, dtype=torch.float64)
    p = fs.LowRank(2).project(a)
    u, s, vh = torch.linalg.svd(a, full_matrices=False)
    expected = (u[..., :2] * s[..., None, :2]) @ vh[..., :2, :]
    torch.testing.assert_close(p, expected)
    # Eckart-Young: the error is the norm of the dropped singular values.
    torch.testing.assert_close(torch.linalg.matrix_norm(a - p), s[..., 2:].square().sum(-1).sqrt())


@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e2])
def test_fixed_rank_is_exactly_rank_r_and_well_conditioned_for_extreme_raw(scale):
    s = fs.FixedRank(3)
    left, singular, right = (
        _normal(20, 8, 3, scale=scale, seed=1),
        _normal(20, 3, scale=1e4, seed=2),  # singular values from 0 to 1e4
        _normal(20, 6, 3, scale=scale, seed=3),
    )
    a = s.apply((left, singular, right))
    sv = torch.linalg.svdvals(a.double())
    assert torch.isfinite(a).all()
    assert (sv[:, 3:] <= 1e-5 * sv[:, :1]).all()  # rank 3, in float32
    # The relative floor: sigma_min >= relative_floor * mean(sigma) / (1 + relative_floor).
    assert (sv[:, 2] >= 0.99e-3 * sv[:, :3].mean(-1) / 1.001).all()
    assert s.contains(a).all()


@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e2, 1e4])
def test_invertible_stays_well_conditioned_for_extreme_raw(scale):
    s = fs.Invertible()
    orthogonal = _normal(20, 6, 6, scale=min(scale, 100.0), seed=4)
    stretch = _normal(20, 6, 6, scale=scale, seed=5)
    a = s.apply((orthogonal, stretch))
    sv = torch.linalg.svdvals(a.double())
    assert torch.isfinite(a).all()
    # The condition number stays below about n / relative_floor = 6000.
    assert (sv[:, 0] / sv[:, -1] < 6.1e3).all()
    assert (torch.linalg.inv_ex(a).info == 0).all()


def test_invertible_reaches_any_invertible_matrix():
    a = _normal(16, 5, 5, seed=6, dtype=torch.float64)  # invertible almost surely
    a = fs.Invertible().project(a)  # lift singular values to the floor: almost no change
    torch.testing.assert_close(fs.Invertible().apply(fs.Invertible().inverse(a)), a)


def test_special_linear_has_determinant_one():
    s = fs.SpecialLinear()
    raw = s.init((50, 5, 5), generator=GEN().manual_seed(7), dtype=torch.float64)
    det = torch.linalg.det(s.apply(raw))
    torch.testing.assert_close(det, torch.ones_like(det))
    a = _normal(50, 4, 4, seed=8, dtype=torch.float64)
    det = torch.linalg.det(s.project(a))
    torch.testing.assert_close(det, torch.ones_like(det))


@pytest.mark.parametrize("bound", [0.5, 1.0, 3.0])
def test_bounded_spectral_norm_is_lipschitz(bound):
    s = fs.BoundedSpectralNorm(bound)
    w = s.apply(_normal(30, 7, 5, scale=10.0, seed=9, dtype=torch.float64))
    assert (torch.linalg.matrix_norm(w, ord=2) <= bound * (1 + 1e-12)).all()
    x, y = _normal(30, 5, seed=10, dtype=torch.float64), _normal(30, 5, seed=11).double()
    gap = torch.linalg.vector_norm((w @ (x - y).unsqueeze(-1)).squeeze(-1), dim=-1)
    assert (gap <= bound * torch.linalg.vector_norm(x - y, dim=-1) * (1 + 1e-12)).all()
    small = s.project(_normal(3, 4, seed=12, dtype=torch.float64)) / 2
    torch.testing.assert_close(s.apply(small), small)  # members map to themselves


def test_factored_raws_in_trees_vmap_and_grad():
    model = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Linear(5, 6))
    like = {k: v.detach() for k, v in model.named_parameters()}
    structure = fs.structure({"0.weight": fs.LowRank(2), "1.weight": fs.BoundedSpectralNorm(2.0)})
    raw = structure.init(like, batch_shape=(4,), generator=GEN().manual_seed(16))
    left, right = raw["0.weight"]
    assert left.shape == (4, 5, 2)
    assert right.shape == (4, 6, 2)
    x = _normal(4, 3, 6, seed=17)

    def loss(r, xs):
        return functional_call(model, structure.apply(r), (xs,)).square().mean()

    grads = vmap(grad(loss))(raw, x)
    assert isinstance(grads["0.weight"], tuple)
    assert grads["0.weight"][0].shape == (4, 5, 2)
    looped = [grad(loss)(r, xi) for r, xi in zip(_unstack(raw, 4), x.unbind(0), strict=True)]
    torch.testing.assert_close(grads["0.weight"][1][2], looped[2]["0.weight"][1])
    # A second call, through the cached plan, gives the same value.
    first = structure.apply(raw)["0.weight"]
    torch.testing.assert_close(structure.apply(raw)["0.weight"], first)
    assert first.shape == (4, 5, 6)
    # Round trip through the tree: inverse gives tuples back where the structure is factored.
    back = structure.inverse(structure.apply(raw))
    assert isinstance(back["0.weight"], tuple)
    torch.testing.assert_close(structure.apply(back)["0.weight"], first, atol=1e-5, rtol=1e-5)


def _unstack(tree, size):
    import optree

    leaves, spec = optree.tree_flatten(tree, namespace="torch")
    return [optree.tree_unflatten(spec, [x[i] for x in leaves]) for i in range(size)]


@pytest.mark.parametrize("shape", [(5, 4), (3, 6)])
def test_low_rank_inverse_of_zero_and_rank_deficient_members_is_not_a_saddle(shape):
    """Two zero factors are a saddle (the gradient of left @ rightᵀ is 0 in every direction), so
    inverse(0) must not return them: LoRA from raw_from(frozen weight) would never train."""
    s = fs.LowRank(2)
    gen = torch.Generator().manual_seed(17)
    rank_one = torch.randn(shape[0], 1, generator=gen, dtype=torch.float64) @ torch.randn(
        1, shape[1], generator=gen, dtype=torch.float64
    )
    for value in (torch.zeros(shape, dtype=torch.float64), rank_one):
        raw = tuple(part.requires_grad_() for part in s.inverse(value))
        torch.testing.assert_close(s.apply(raw), value, atol=1e-12, rtol=0)
        w = torch.randn(shape, generator=gen, dtype=torch.float64)
        (s.apply(raw) * w).sum().backward()
        assert raw[1].grad.norm(dim=-2).min() > 1e-3  # every right column moves


def test_special_linear_rejects_tiny_and_singular_matrices():
    """The first-order tolerance of log det is huge for a nearly singular matrix, so it alone
    would accept 1e-20 * I (det 1e-60) and -u uᵀ, and inverse would give a finite raw of I."""
    s = fs.SpecialLinear()
    u = torch.randn(7, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for value in (
        1e-20 * torch.eye(3),
        1e-30 * torch.randn(4, 4, generator=torch.Generator().manual_seed(1)),
        1e-10 * torch.randn(4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(2)),
        -u @ u.T,
    ):
        assert not s.contains(value)
        assert all(torch.isnan(part).all() for part in s.inverse(value))
    member = s.apply(s.init((5, 6, 6), generator=torch.Generator().manual_seed(3)))
    assert s.contains(member).all()


def test_invertible_contains_only_what_project_leaves_in_place():
    """project lifts singular values below the floor, so contains must reject them: accepting
    down to half the floor, this float32 3 x 3 matrix would be 'in the set' yet move by 2.3e-4
    (a case from the thorough hypothesis profile's outside-law fixed-point check)."""
    from functional_struct import testing

    s = fs.Invertible()
    value = testing._fill(torch.empty(3, 3, 3), "normal", 1.0, torch.Generator().manual_seed(13718))
    inside = s.contains(value)
    moved = (s.project(value) - value).abs().amax((-2, -1))
    assert (moved[inside] <= 1e-4 * value.abs().amax((-2, -1))[inside].clamp_min(1)).all()
    assert not s.contains(torch.zeros(3, 3))


def test_fixed_rank_contains_only_what_project_moves_within_tolerance():
    """Like Invertible's: an r-th singular value down to half the floor is lifted by project
    (by up to 1.18x the tolerance on these draws), so contains must reject it."""
    s = fs.FixedRank(2)
    gen = torch.Generator().manual_seed(0)
    worst = 0.0
    for _ in range(30):
        u, sv, vh = torch.linalg.svd(torch.randn(8, 4, 3, generator=gen), full_matrices=False)
        sv[:, 1] = sv[:, 0] * torch.rand(8, generator=gen) * 2e-3  # near the relative floor
        sv[:, 2] = 0
        value = (u * sv.unsqueeze(-2)) @ vh
        inside = s.contains(value)
        moved = (s.project(value) - value).abs().amax((-2, -1)) / (1e-4 + 1e-4 * sv[:, 0])
        if inside.any():
            worst = max(worst, moved[inside].max().item())
    assert worst <= 1.0
