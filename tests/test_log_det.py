"""The "log_det" capability: sign, closed forms at the edges, bad values, transforms, compile.

The contract tests run the law on every catalog entry that has the capability; these pin what
the law alone does not: the sign convention by a change of variables, that the law catches
broken implementations, extreme raw where the dense reference fails, NaN handling and
``torch.compile``.
"""

import dataclasses
import math

import pytest
import torch
from torch.func import grad, jacfwd, vmap

import functional_struct as fs
from functional_struct import testing

PACKED = [
    fs.PositiveDefinite(packed=True),
    fs.PositiveDefinite(method="expm", packed=True),
    fs.CholeskyFactor(packed=True),
    fs.Correlation(packed=True),
    fs.SpecialOrthogonal(packed=True),
]


def test_sign_convention_by_change_of_variables():
    """A density pushed through the map integrates to one only with the log-det's sign right.

    ``Bounded(0, 1)`` pushes N(0, 1) forward to ``p_Y(y) = φ(x) / |dy/dx|``, that is
    ``φ(x) exp(-log_det)``; a negated log-det would give ``φ(x) exp(+log_det)``, which
    integrates to about 0.2, not 1.
    """
    structure = fs.Bounded(0.0, 1.0)
    y = torch.linspace(1e-9, 1 - 1e-9, 200_001, dtype=torch.float64)
    x = structure.inverse(y)
    _, log_det = structure.forward_and_log_det(x)
    normal = torch.distributions.Normal(torch.tensor(0.0, dtype=torch.float64), 1.0)
    density = (normal.log_prob(x) - log_det).exp()
    assert torch.trapezoid(density, y).item() == pytest.approx(1.0, abs=1e-3)
    wrong = (normal.log_prob(x) + log_det).exp()
    assert abs(torch.trapezoid(wrong, y).item() - 1.0) > 0.5


def test_log_det_is_the_log_of_the_jacobian_not_its_negative():
    """PD at raw 0: log|det| of the Jacobian is known in closed form and positive here."""
    s = fs.PositiveDefinite(packed=True, relative_floor=0.0)
    _, log_det = s.forward_and_log_det(torch.zeros(3, dtype=torch.float64))
    # n = 2: sigmoid(0)^2 * 2^2 * softplus(0)^(2 + 1) = 0.25 * 4 * log(2)^3
    assert log_det.item() == pytest.approx(3 * math.log(math.log(2)))
    assert log_det.item() < 0  # log(2)^3 < 1: a negated answer would be positive


@dataclasses.dataclass(frozen=True)
class _Negated(fs.PositiveDefinite):
    def _forward_and_log_det(self, raw):
        value, log_det = super()._forward_and_log_det(raw)
        return value, -log_det


@dataclasses.dataclass(frozen=True)
class _NoFloorTerm(fs.PositiveDefinite):
    def _forward_and_log_det(self, raw):
        value, log_det = super()._forward_and_log_det(raw)
        return value, log_det - math.log1p(self.relative_floor)


@dataclasses.dataclass(frozen=True)
class _WrongCoordinates(fs.SpecialOrthogonal):
    def _log_det_coordinates(self, value, tangent):  # the entries of dQ, not of Qᵀ dQ
        return fs._packing.pack_lower(tangent, strict=True)


@dataclasses.dataclass(frozen=True)
class _BatchLeak(fs.Simplex):
    def _forward_and_log_det(self, raw):
        value, log_det = super()._forward_and_log_det(raw)
        return value, log_det + log_det.mean()  # mixes batch elements


@pytest.mark.parametrize(
    "broken",
    [
        _Negated(packed=True),
        _NoFloorTerm(packed=True, relative_floor=0.5),
        _WrongCoordinates(packed=True),
        _BatchLeak(packed=True),
    ],
    ids=["negated", "floor term dropped", "wrong coordinates", "batch leak"],
)
def test_law_catches_a_broken_log_det(broken):
    core = (4,) if isinstance(broken, fs.Simplex) else (3, 3)
    with pytest.raises(testing.LawError, match="log_det"):
        testing.check_laws(broken, core, laws=("log_det",))


@pytest.mark.parametrize("scale", [1.0, 20.0, 200.0])
def test_cholesky_log_det_at_extreme_raw_against_a_triangular_reference(scale):
    """At raw of scale 20 the dense Jacobian's condition number passes 1e30 and no slogdet of
    it can serve as a reference. Without the floor, though, the Jacobian is triangular when
    the lower-triangle coordinates are ordered column by column (``B_ij`` reads ``L_kl`` only
    for ``l <= j``), so its determinant is the product of its diagonal, exactly; the floor
    then multiplies it by ``1 + r`` (the law checks that factor where slogdet is accurate)."""
    n = 4
    gen = torch.Generator().manual_seed(3)
    raw = scale * torch.randn(n * (n + 1) // 2, generator=gen, dtype=torch.float64)
    floored = fs.PositiveDefinite(packed=True, relative_floor=1e-5)
    plain = fs.PositiveDefinite(packed=True, relative_floor=0.0)
    _, log_det = floored.forward_and_log_det(raw)
    value = plain.apply(raw)
    jacobian = plain._log_det_coordinates(value, jacfwd(plain.apply)(raw).permute(2, 0, 1)).T
    order = [i * (i + 1) // 2 + j for j in range(n) for i in range(j, n)]
    triangular = jacobian[order][:, order]
    assert torch.count_nonzero(torch.triu(triangular, 1)) == 0
    reference = triangular.diagonal().abs().log().sum() + math.log1p(1e-5)
    assert log_det.item() == pytest.approx(reference.item(), rel=1e-12)


@pytest.mark.parametrize("structure", PACKED, ids=repr)
@pytest.mark.parametrize("scale", [1e-30, 1e4])
def test_extreme_raw_gives_finite_log_det_and_gradients(structure, scale):
    gen = torch.Generator().manual_seed(0)
    raw = scale * torch.randn(2, *structure.raw_shape((4, 4)), generator=gen)
    if isinstance(structure, fs.PositiveDefinite) and structure.method == "expm":
        raw = raw.clamp(-5, 5)  # the documented range of the exponential chart
    value, log_det = structure.forward_and_log_det(raw)
    assert torch.isfinite(value).all()
    assert torch.isfinite(log_det).all()
    g = grad(lambda r: structure.forward_and_log_det(r)[1].sum())(raw)
    assert torch.isfinite(g).all()


@pytest.mark.parametrize("structure", [*PACKED, fs.Simplex(packed=True)], ids=repr)
def test_non_finite_raw_gives_nan_for_that_element_only(structure):
    core = (4,) if isinstance(structure, fs.Simplex) else (3, 3)
    raw = structure.init((3, *core), generator=torch.Generator().manual_seed(0))
    raw = raw.clone()
    raw[1, 0] = math.inf
    value, log_det = structure.forward_and_log_det(raw)
    assert torch.isnan(log_det[1])
    assert torch.isnan(value[1]).all()
    clean = structure.forward_and_log_det(raw[[0, 2]])[1]
    assert torch.equal(log_det[[0, 2]], clean)


def test_non_member_into_inverse_and_log_det_gives_nan():
    structure = fs.PositiveDefinite(packed=True)
    values = torch.stack([torch.eye(3), -torch.eye(3), torch.full((3, 3), math.nan)])
    raw, log_det = structure.inverse_and_log_det(values)
    assert torch.isfinite(raw[0]).all()
    assert torch.isfinite(log_det[0])
    assert torch.isnan(raw[1:]).all()
    assert torch.isnan(log_det[1:]).all()


@pytest.mark.parametrize("structure", PACKED, ids=repr)
def test_empty_batch_and_meta_device(structure):
    raw = structure.init((0, 3, 3))
    value, log_det = structure.forward_and_log_det(raw)
    assert value.shape == (0, 3, 3)
    assert log_det.shape == (0,)
    meta = torch.empty(2, *structure.raw_shape((3, 3)), device="meta")
    value, log_det = structure.forward_and_log_det(meta)
    assert value.shape == (2, 3, 3)
    assert log_det.shape == (2,)
    assert log_det.is_meta


def test_chain_sums_its_parts_log_dets():
    chain = fs.Chain(fs.Positive(), fs.Diagonal(packed=True))
    raw = torch.randn(2, 4, dtype=torch.float64)
    _, log_det = chain.forward_and_log_det(raw)
    assert torch.allclose(log_det, torch.nn.functional.logsigmoid(raw).sum(-1))
    assert not fs.Chain(fs.Positive(), fs.Diagonal()).supports("log_det")


def test_vmap_grad_jacfwd_of_log_det_agree():
    structure = fs.Correlation(packed=True)
    raw = torch.randn(5, 6, dtype=torch.float64)

    def log_det(r):
        return structure.forward_and_log_det(r)[1]

    batched = vmap(grad(log_det))(raw)
    forward = vmap(jacfwd(log_det))(raw)
    looped = torch.stack([grad(log_det)(r) for r in raw])
    assert torch.allclose(batched, looped)
    assert torch.allclose(forward, looped)


@pytest.mark.parametrize(
    "structure",
    [fs.PositiveDefinite(packed=True), fs.Correlation(packed=True), fs.Simplex(packed=True)],
    ids=repr,
)
def test_compile_fullgraph_with_changing_shapes(structure):
    def step(raw):
        value, log_det = structure.forward_and_log_det(raw)
        return value, log_det

    compiled = torch.compile(step, fullgraph=True, dynamic=True)
    for n in (3, 4, 5):
        core = (n,) if isinstance(structure, fs.Simplex) else (n, n)
        raw = structure.init((2, *core), generator=torch.Generator().manual_seed(n))
        want = step(raw)
        got = compiled(raw)
        for g, w in zip(got, want, strict=True):
            torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-5)


def test_rotation_log_det_is_haar_volume():
    """Cayley volume in Qᵀ dQ coordinates: at raw 0 (Q = I) the Jacobian is 2 I."""
    n = 4
    structure = fs.SpecialOrthogonal(packed=True)
    _, log_det = structure.forward_and_log_det(torch.zeros(n * (n - 1) // 2))
    assert log_det.item() == pytest.approx(n * (n - 1) / 2 * math.log(2), rel=1e-6)


def test_tree_sums_its_leaves_log_dets_with_batch_dims():
    tree = fs.structure(
        {"cov": fs.PositiveDefinite(packed=True), "scale": fs.Positive(), "bias": None}
    )
    raw = {
        "cov": torch.randn(5, 6, dtype=torch.float64),
        "scale": torch.randn(5, 2, dtype=torch.float64),
        "bias": torch.randn(5, 3, dtype=torch.float64),
    }
    values, log_det = tree.forward_and_log_det(raw, batch_dims=1)
    want = fs.PositiveDefinite(packed=True).forward_and_log_det(raw["cov"])[
        1
    ] + torch.nn.functional.logsigmoid(raw["scale"]).sum(-1)
    torch.testing.assert_close(log_det, want)
    assert torch.equal(values["bias"], raw["bias"])
    per_member = vmap(lambda r: tree.forward_and_log_det(r)[1])(raw)
    torch.testing.assert_close(per_member, want)


def test_tree_refusal_names_the_leaf():
    tree = fs.structure({"w": fs.Orthogonal()})
    with pytest.raises(fs.NotSupported, match=r"leaf 'w'.*SpecialOrthogonal\(packed=True\)"):
        tree.forward_and_log_det({"w": torch.zeros(3, 3)})
    with pytest.raises(TypeError, match="batch_dims must be an int >= 0"):
        fs.structure({"w": fs.Positive()}).forward_and_log_det({"w": torch.zeros(2)}, batch_dims=-1)
