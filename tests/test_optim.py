"""fs.optim and the "manifold" capability: convergence, purity, ensembles, compile, the law."""

import dataclasses

import pytest
import torch
from torch.func import grad, vmap

import functional_struct as fs
from functional_struct import testing

MANIFOLDS = [
    pytest.param(e.structure, e.core_shapes[-1], id=e.id)
    for e in testing.CATALOG
    if e.structure.supports("manifold")
]
# The 10,000-step soak takes one entry per class and form (the options change no geometry).
SOAK = list(
    {(type(p.values[0]), getattr(p.values[0], "packed", None)): p for p in MANIFOLDS}.values()
)


def _brockett(n=8, k=2, seed=0):
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=torch.float64))
    eigenvalues = torch.linspace(1.0, 4.0, n, dtype=torch.float64)
    a = q @ torch.diag(eigenvalues) @ q.T
    return a, -eigenvalues[-k:].sum()


@pytest.mark.parametrize("make", ["sgd", "adam"])
def test_brockett_reaches_the_known_optimum(make):
    """min -tr(XᵀAX) over Stiefel(8, 2): the optimum is minus the two largest eigenvalues."""
    a, optimum = _brockett()
    s = fs.Orthogonal()
    opt = (
        fs.optim.riemannian_sgd(s, lr=0.1, momentum=0.5)
        if make == "sgd"
        else fs.optim.riemannian_adam(s, lr=0.05)
    )
    x = s.apply(s.init((8, 2), generator=torch.Generator().manual_seed(1), dtype=torch.float64))
    state = opt.init(x)

    def loss(x):
        return -torch.trace(x.T @ a @ x)

    for _ in range(600):
        x, state = opt.update(x, grad(loss)(x), state)
    assert (loss(x) - optimum).abs() / optimum.abs() < 1e-6
    assert s.contains(x)


def test_update_is_pure_and_state_is_a_pytree():
    s = fs.structure({"w": fs.Orthogonal(), "b": None})
    opt = fs.optim.riemannian_adam(s, lr=0.1)
    points = {"w": torch.eye(3), "b": torch.zeros(3)}
    state = opt.init(points)
    before = [t.clone() for t in (points["w"], points["b"], state.m["w"], state.v["b"])]
    grads = {"w": torch.randn(3, 3), "b": torch.randn(3)}
    new, new_state = opt.update(points, grads, state)
    after = (points["w"], points["b"], state.m["w"], state.v["b"])
    assert all(torch.equal(x, y) for x, y in zip(before, after, strict=True))
    assert int(new_state.step) == 1
    assert not torch.equal(new["w"], points["w"])


@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128], ids=str)
def test_unstructured_leaves_take_torch_adam_steps(dtype):
    """Complex leaves too: torch.optim.Adam keeps moments per real coordinate, and so do we."""
    opt = fs.optim.riemannian_adam({"w": None}, lr=0.01, betas=(0.8, 0.99), eps=1e-6)
    w = torch.randn(4, dtype=dtype)
    param = torch.nn.Parameter(w.clone())
    reference = torch.optim.Adam([param], lr=0.01, betas=(0.8, 0.99), eps=1e-6)
    points, state = {"w": w}, opt.init({"w": w})
    for i in range(5):
        g = torch.sin(torch.arange(4, dtype=torch.float64) + i)
        if dtype.is_complex:
            g = torch.complex(g, torch.cos(3 * torch.arange(4, dtype=torch.float64) - i))
        points, state = opt.update(points, {"w": g}, state)
        param.grad = g.clone()
        reference.step()
    torch.testing.assert_close(points["w"], param.detach())


def test_ensemble_with_per_member_learning_rates_equals_separate_runs():
    a, _ = _brockett()
    s = fs.Orthogonal()
    opt = fs.optim.riemannian_sgd({"x": s}, lr=0.1, momentum=0.5)
    gen = torch.Generator().manual_seed(2)
    xs = s.apply(s.init((4, 8, 2), generator=gen, dtype=torch.float64))
    lrs = torch.tensor([0.02, 0.05, 0.1, 0.2], dtype=torch.float64)

    def loss(p):
        return -torch.trace(p["x"].T @ a @ p["x"])

    def step(p, st):
        return opt.update(p, grad(loss)(p), st)

    points, state = {"x": xs}, vmap(opt.init)({"x": xs})
    state = state._replace(lr=lrs)
    for _ in range(20):
        points, state = vmap(step)(points, state)
    for i in range(4):
        single = fs.optim.riemannian_sgd({"x": s}, lr=float(lrs[i]), momentum=0.5)
        p, st = {"x": xs[i]}, single.init({"x": xs[i]})
        for _ in range(20):
            p, st = single.update(p, grad(loss)(p), st)
        torch.testing.assert_close(points["x"][i], p["x"])


def test_compiled_vmapped_step_has_no_graph_break():
    a, _ = _brockett()
    s = fs.Orthogonal()
    opt = fs.optim.riemannian_adam({"x": s}, lr=0.05)

    def loss(p):
        return -torch.trace(p["x"].T @ a.float() @ p["x"])

    def step(p, st):
        return vmap(lambda q, t: opt.update(q, grad(loss)(q), t))(p, st)

    xs = s.apply(s.init((3, 8, 2), generator=torch.Generator().manual_seed(0)))
    points, state = {"x": xs}, vmap(opt.init)({"x": xs})
    compiled = torch.compile(step, fullgraph=True)
    eager_points, eager_state = points, state
    for _ in range(3):
        points, state = compiled(points, state)
        eager_points, eager_state = step(eager_points, eager_state)
    torch.testing.assert_close(points["x"], eager_points["x"], rtol=1e-4, atol=1e-5)


def test_unsupported_leaf_names_its_path_and_the_other_route():
    with pytest.raises(fs.NotSupported, match=r"leaf 'w'.*parametrization route"):
        fs.optim.riemannian_sgd({"w": fs.LowRank(2)}, lr=0.1).init({"w": torch.zeros(3, 3)})


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"lr": -1.0}, ValueError),
        ({"lr": "fast"}, TypeError),
        ({"lr": 0.1, "betas": (0.9,)}, TypeError),
        ({"lr": 0.1, "betas": (0.9, 1.0)}, ValueError),
        ({"lr": 0.1, "eps": -1e-8}, ValueError),
    ],
)
def test_bad_hyperparameters(kwargs, error):
    with pytest.raises(error, match="fs.optim"):
        fs.optim.riemannian_adam(fs.Orthogonal(), **kwargs)


@dataclasses.dataclass(frozen=True)
class _NoNormalize(fs.UnitNorm):
    def _retract(self, value, step):
        return value + step  # leaves the sphere


@dataclasses.dataclass(frozen=True)
class _SlowVelocity(fs.UnitNorm):
    def _retract(self, value, step):
        return super()._retract(value, step / 2)  # stays on the sphere, wrong velocity


@dataclasses.dataclass(frozen=True)
class _NotIdempotent(fs.Orthogonal):
    def _tangent(self, value, vector):
        return 2 * super()._tangent(value, vector)


@dataclasses.dataclass(frozen=True)
class _TransportOff(fs.Orthogonal):
    def _transport(self, value, new_value, vector):
        return vector  # not tangent at the new point


@pytest.mark.parametrize(
    "broken",
    [_NoNormalize(), _SlowVelocity(), _NotIdempotent(), _TransportOff()],
    ids=["leaves the set", "wrong velocity", "not idempotent", "transport not tangent"],
)
def test_law_catches_a_broken_manifold(broken):
    core = (4,) if isinstance(broken, fs.UnitNorm) else (4, 4)
    with pytest.raises(testing.LawError, match="manifold"):
        testing.check_laws(broken, core, laws=("manifold",))


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize(("structure", "core"), SOAK)
def test_ten_thousand_adam_steps_stay_in_the_set(structure, core, dtype):
    if dtype not in structure.dtypes:  # complex-only structures: the complex counterpart
        dtype = {torch.float32: torch.complex64, torch.float64: torch.complex128}[dtype]
    x = structure.apply(
        structure.init((2, *core), generator=torch.Generator().manual_seed(0), dtype=dtype)
    )
    testing._manifold._check_adam_stays(structure, x, 10_000)


def test_adam_is_geoopts_step_for_step_on_the_euclidean_stiefel_manifold():
    """The anchor: geoopt's RiemannianAdam on its Euclidean Stiefel manifold (QR retraction,
    projection transport, one second moment per point) takes the same steps."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # geoopt's import warns about torch.jit.script
        geoopt = pytest.importorskip("geoopt")
    a, _ = _brockett()
    s = fs.Orthogonal()
    x0 = s.apply(s.init((8, 2), generator=torch.Generator().manual_seed(3), dtype=torch.float64))

    def loss(x):
        return -torch.trace(x.T @ a @ x)

    opt = fs.optim.riemannian_adam(s, lr=0.05)
    x, state = x0, opt.init(x0)
    point = geoopt.ManifoldParameter(x0.clone(), manifold=geoopt.EuclideanStiefel())
    reference = geoopt.optim.RiemannianAdam([point], lr=0.05)
    for _ in range(30):
        x, state = opt.update(x, grad(loss)(x), state)
        reference.zero_grad()
        loss(point).backward()
        reference.step()
    torch.testing.assert_close(x, point.detach(), rtol=1e-9, atol=1e-9)


def test_review_regressions():
    """Cases a hostile sweep found: each now stays in its set or refuses clearly."""
    simplex = fs.Simplex()
    assert torch.equal(
        simplex.retract(torch.tensor([1.0, 0.0]), torch.tensor([-10.0, 10.0])),
        torch.tensor([0.0, 1.0]),
    )
    small = simplex.retract(torch.tensor([0.5, 0.5, 0.0]), torch.tensor([-1e-3, -1e-3, 2e-3]))
    torch.testing.assert_close(small, torch.tensor([0.499, 0.499, 0.002]))
    rank = fs.FixedRank(2)
    x = rank.apply(rank.init((5, 4), generator=torch.Generator().manual_seed(0)))
    assert rank.contains(rank.retract(x, -x))  # Uᵀ(X + Z)V singular: the projection instead
    assert torch.isfinite(
        fs.UnitNorm().retract(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1e20]))
    ).all()
    with pytest.raises(ValueError, match=r"Orthogonal.*transport: new_value must have the shape"):
        fs.Orthogonal().transport(torch.eye(3), torch.eye(4), torch.zeros(3, 3))


def test_sgd_dampening_only_with_momentum_and_rates_keep_their_digits():
    opt = fs.optim.riemannian_sgd(None, lr=1.0, momentum=0.0, dampening=0.5)
    p, state = torch.zeros(1), opt.init(torch.zeros(1))
    for _ in range(3):
        p, state = opt.update(p, torch.ones(1), state)
    assert p.item() == -3.0  # as torch.optim.SGD: no dampening without momentum
    opt = fs.optim.riemannian_sgd(None, lr=0.1)
    assert opt.init({"a": torch.zeros(2, dtype=torch.bfloat16)}).lr.item() == 0.1
    with pytest.raises(TypeError, match="leaf 'a' must be floating point"):
        opt.init({"a": torch.zeros(2, dtype=torch.long)})
    with pytest.raises(ValueError, match="leaf 'b': grads must be a tensor of the point's shape"):
        opt.update({"b": torch.ones(3)}, {"b": torch.ones(2, 3)}, opt.init({"b": torch.ones(3)}))
    for bad in ({"eps": 0.0}, {"lr": float("inf")}, {"lr": torch.tensor(-1.0)}):
        with pytest.raises(ValueError, match="fs.optim"):
            fs.optim.riemannian_adam(None, **{"lr": 0.1, **bad})
