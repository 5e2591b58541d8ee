"""Robustness: extreme raw, NaN/Inf, half precision, determinism, threads, long training,
values near float max, the meta device."""

import concurrent.futures
import math

import optree
import pytest
import torch

import functional_struct as fs
from functional_struct import testing

ENTRIES = [pytest.param(e, id=e.id) for e in testing.CATALOG]
KINDS = ["normal", "zeros", "constant", "rank_one"]


def _pair(dtype, structure):
    """``dtype``, or its complex counterpart for structures that take complex dtypes only."""
    if dtype in structure.dtypes:
        return dtype
    return {torch.float32: torch.complex64, torch.float64: torch.complex128}[dtype]


ENTRY_DTYPES = [
    pytest.param(e, d, id=f"{e.id}-{str(d).removeprefix('torch.')}")
    for e in testing.CATALOG
    for d in (torch.float32, torch.float64, torch.complex64, torch.complex128)
    if d in e.structure.dtypes
]


def _tmap(fn, *trees):
    """``fn`` over the tensors of a raw (one tensor, or a factored structure's tuple)."""
    return optree.tree_map(fn, *trees, namespace="torch")


def _all(predicate, tree):
    return all(bool(predicate(x)) for x in optree.tree_leaves(tree, namespace="torch"))


def _extreme_raw(entry, dtype, kind, magnitude, seed=0):
    shape = (2, *entry.core_shapes[-1])
    gen = torch.Generator().manual_seed(seed)
    return testing._draw_raw(entry.structure, shape, dtype, gen, kind, magnitude), shape


@pytest.mark.parametrize(("entry", "dtype"), ENTRY_DTYPES)
def test_extreme_raw_gives_finite_values_and_gradients(entry, dtype):
    """Magnitudes up to 1e4, exact zeros, repeated entries and rank-one raw, in both dtypes:
    outputs and gradients are finite everywhere; membership holds up to the entry's documented
    magnitude (1e4 for most; see the README's Guarantees for those that stop earlier), and
    finiteness up to its finite_magnitude (the exponential-based maps overflow past theirs)."""
    s = entry.structure
    for kind in KINDS:
        for magnitude in (1e-3, 1.0, 1e2, 1e4):
            if magnitude > entry.finite_magnitude:
                continue
            raw, shape = _extreme_raw(entry, dtype, kind, magnitude)
            value = s.apply(raw)
            assert torch.isfinite(value).all(), (kind, magnitude)
            weights = torch.randn(shape, dtype=dtype, generator=torch.Generator().manual_seed(1))
            g = torch.func.grad(lambda r, w=weights: (w * s.apply(r)).real.sum())(raw)
            assert _all(lambda t: torch.isfinite(t).all(), g), (kind, magnitude)
            if magnitude <= entry.max_magnitude:
                assert s.contains(value).all(), (kind, magnitude)


@pytest.mark.parametrize("entry", ENTRIES)
def test_nan_and_inf_in_raw_are_never_silently_accepted(entry):
    """Documented: NaN in every raw entry gives a non-finite value and contains is False;
    +-Inf either does the same or, for saturating maps (Bounded's sigmoid), lands on the
    boundary of the set, a genuine member. NaN/Inf in entries a structure ignores (a
    masked-out corner) has no effect."""
    s = entry.structure
    template = s.init((2, *entry.core_shapes[-1]))
    nan = s.apply(_tmap(lambda t: torch.full_like(t, float("nan")), template))
    assert not torch.isfinite(nan).all()
    assert not s.contains(nan).any()
    for inf in (float("inf"), float("-inf")):
        value = s.apply(_tmap(lambda t, inf=inf: torch.full_like(t, inf), template))
        if torch.isfinite(value).all():
            assert s.contains(value).all(), inf
        else:
            assert not s.contains(value).any(), inf


NON_MEMBERS = [
    # (structure, a value outside its set), each a case where a naive inverse gives a finite
    # raw of some other member.
    (fs.Orthogonal(), torch.tensor([[2.0, 1.0], [0.5, 3.0]])),
    (fs.Orthogonal(), torch.tensor([[0.0, 1.0], [1.0, 0.0]]) * 1.5),  # 1.5 times a reflection
    (fs.Orthogonal(method="householder"), torch.tensor([[2.0, 1.0], [0.5, 3.0], [1.0, 1.0]])),
    (fs.SpecialOrthogonal(), torch.tensor([[0.0, 1.0], [1.0, 0.0]])),  # det -1
    (fs.PositiveDefinite(), torch.tensor([[2.0, 5.0], [0.5, 3.0]])),  # lower triangle valid
    (fs.Correlation(), torch.tensor([[1.0, 0.9], [0.1, 1.0]])),
    (fs.SpecialLinear(), torch.tensor([[1.0, 0.0], [0.0, -1.0]])),  # det -1
    (fs.Simplex(), torch.tensor([0.2, 0.3, 0.1])),  # sums to 0.6
]


@pytest.mark.parametrize(("structure", "value"), NON_MEMBERS, ids=lambda x: repr(x)[:40])
def test_inverse_of_a_non_member_is_nan_not_another_members_raw(structure, value):
    assert not structure.contains(value)
    for leaf in optree.tree_leaves(structure.inverse(value), namespace="torch"):
        assert torch.isnan(leaf).all()
    batch = torch.stack([value, structure.project(value)])  # per batch element
    raw = structure.inverse(batch)
    image = structure.apply(raw)
    assert torch.isnan(image[0]).all() or _all(lambda r: torch.isnan(r[0]).all(), raw)
    torch.testing.assert_close(image[1], structure.project(value), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("entry", ENTRIES)
def test_values_never_raise(entry):
    """NaN, +-Inf, zeros, 1e30 and -1e30 into contains, project, inverse and raw_from: no
    exception; the non-finite elements give False, NaN and NaN."""
    s = entry.structure
    core = entry.core_shapes[-1]
    good = s.apply(s.init((1, *core), generator=torch.Generator().manual_seed(0)))
    fills = [math.nan, math.inf, -math.inf, 0.0, 1e30, -1e30]
    values = torch.cat([good] + [torch.full_like(good, f) for f in fills])
    values[1].view(-1)[0] = 1.0 if values[1].numel() > 1 else math.nan  # one NaN among numbers
    inside = s.contains(values)
    projected = s.project(values)
    raw = s.inverse(values)
    s.raw_from(values)
    finite = torch.isfinite(values.reshape(values.shape[0], -1)).all(-1)
    if s.core_ndim == 0:
        finite = torch.isfinite(values)
    assert not inside[~finite].any()
    assert torch.isnan(projected[~finite]).all()
    assert _all(lambda r: torch.isnan(r[~finite]).all(), raw)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["float16", "bfloat16"])
@pytest.mark.parametrize("entry", ENTRIES)
def test_half_precision_works_or_is_rejected_clearly(entry, dtype):
    s = entry.structure
    raw = s.init((2, *entry.core_shapes[-1]), generator=torch.Generator().manual_seed(0))
    if torch.float32 not in s.dtypes:  # complex only: a real half raw is refused
        with pytest.raises(TypeError, match=f"got {str(dtype).removeprefix('torch.')}"):
            s.apply(_tmap(lambda t: t.real.to(dtype), raw))
        return
    if dtype not in s.dtypes:
        with pytest.raises(TypeError, match=f"got {str(dtype).removeprefix('torch.')}"):
            s.apply(_tmap(lambda t: t.to(dtype), raw))
        return
    low = s.apply(_tmap(lambda t: t.to(dtype), raw))
    assert low.dtype == dtype
    tol = 2e-2 if dtype == torch.float16 else 1e-1
    torch.testing.assert_close(low.float(), s.apply(raw), atol=tol, rtol=tol)
    assert s.contains(low).all()


@pytest.mark.parametrize("entry", ENTRIES)
def test_determinism_init_and_apply(entry):
    s = entry.structure
    shape = (3, *entry.core_shapes[-1])
    a = s.init(shape, generator=torch.Generator().manual_seed(5))
    b = s.init(shape, generator=torch.Generator().manual_seed(5))
    assert _all(lambda t: t, _tmap(torch.equal, a, b))
    assert torch.equal(s.apply(a), s.apply(a))


def test_many_threads_on_shared_structures_agree_with_one():
    jobs = []
    for entry in testing.CATALOG:
        raw = entry.structure.init(
            (4, *entry.core_shapes[-1]), generator=torch.Generator().manual_seed(0)
        )
        jobs.append((entry.structure, raw))
    expected = [s.apply(raw) for s, raw in jobs]
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        for _ in range(3):
            results = list(pool.map(lambda job: job[0].apply(job[1]), jobs * 4))
            for i, got in enumerate(results):
                assert torch.equal(got, expected[i % len(jobs)])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("entry", ENTRIES)
def test_on_cuda_everything_stays_on_the_device_and_matches_cpu(entry):
    s, device = entry.structure, torch.device("cuda")
    shape = (3, *entry.core_shapes[-1])
    raw_cpu = s.init(shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    raw = _tmap(lambda t: t.to(device), raw_cpu)
    assert _all(lambda t: t.device.type == "cuda", s.init(shape, device=device))
    value = s.apply(raw)
    outputs = [value, s.inverse(value), s.project(value), s.contains(value), s.raw_from(value)]
    outputs.append(torch.func.vmap(torch.func.grad(lambda r: s.apply(r).square().sum()))(raw))
    assert _all(lambda o: o.device.type == "cuda", outputs)
    torch.testing.assert_close(value.cpu(), s.apply(raw_cpu))
    assert s.contains(value).all()
    tree = fs.structure({"w": s})
    like = {
        "w": torch.empty(entry.core_shapes[-1], device=device),
        "b": torch.ones(2, device=device),
    }
    raw_tree = tree.init(like, batch_shape=(2,))
    assert all(v.device.type == "cuda" for v in tree.apply(raw_tree).values())


def _soak(entry, steps, clamp):
    """Adam at a high learning rate on a loss that pushes each value out of its set.

    With ``clamp`` the raw is clamped to the entry's documented magnitude after each step, so it
    never leaves the range where membership is promised, and membership is asserted at every
    check, with the value's relative distance from its projection. Without, the push drives the
    raw as far as it goes: values stay finite while the raw is within ``finite_magnitude``, and
    are members while it is within ``max_magnitude``. Returns the worst relative distance.
    """
    s = entry.structure
    probe = _tmap(lambda t: t.requires_grad_(), s.init((4, *entry.core_shapes[-1])))
    if not s.apply(probe).requires_grad:  # nothing can train it: the graph is cut at the raw
        assert not entry.differentiable
        return 0.0
    shape = (4, *entry.core_shapes[-1])
    gen = torch.Generator().manual_seed(0)
    raw = _tmap(lambda t: t.requires_grad_(), s.init(shape, generator=gen))
    params = optree.tree_leaves(raw, namespace="torch")
    push = torch.randn(shape, generator=gen, dtype=params[0].dtype)
    optimizer = torch.optim.Adam(params, lr=0.1)
    tolerance = 10 * (entry.tolerance or fs.default_tolerances(torch.float32)[1])
    worst = 0.0
    for step in range(steps):
        optimizer.zero_grad()
        value = s.apply(raw)
        (-(push * value).real.sum()).backward()
        optimizer.step()
        if clamp:
            with torch.no_grad():
                for p in params:
                    part = torch.view_as_real(p) if p.is_complex() else p
                    part.clamp_(-entry.max_magnitude, entry.max_magnitude)
        if step % 100 == 0 or step == steps - 1:
            size = max(p.detach().abs().max().item() for p in params)
            if size > entry.finite_magnitude:  # the push left the promised range: stop
                assert not clamp
                break
            value = value.detach()
            assert torch.isfinite(value).all(), step
            assert _all(lambda p: torch.isfinite(p).all(), params), step
            if clamp or size <= entry.max_magnitude:
                assert s.contains(value).all(), step
                gap = (value - s.project(value)).flatten(1).norm(dim=-1)
                gap = (gap / value.flatten(1).norm(dim=-1).clamp_min(1)).max().item()
                assert gap <= tolerance, (step, gap)
                worst = max(worst, gap)
    return worst


def _soak_both(entry, steps):
    _soak(entry, steps, clamp=True)
    if entry.max_magnitude < entry.finite_magnitude:  # else the two runs are the same
        _soak(entry, steps, clamp=False)


@pytest.mark.parametrize("entry", ENTRIES)
def test_short_soak(entry):
    _soak_both(entry, 200)


@pytest.mark.slow
@pytest.mark.parametrize("entry", ENTRIES)
def test_long_soak_10000_adam_steps(entry):
    _soak_both(entry, 10_000)


FINITE_STRUCTURES = [
    fs.LowRank(1),
    fs.FixedRank(1),
    fs.Orthogonal(),
    fs.Orthogonal(method="expm"),
    fs.Orthogonal(method="householder"),
    fs.SpecialOrthogonal(),
    fs.Invertible(),
    fs.SpecialLinear(),
    fs.BoundedSpectralNorm(),
    fs.Unitary(),
    fs.Unitary(method="expm"),
    fs.Unitary(method="householder"),
    fs.SpecialUnitary(),
    fs.HermitianPositiveDefinite(),
    fs.DensityMatrix(),
    fs.DensityMatrix(rank=1),
    fs.PositiveDefinite(),
    fs.PositiveDefinite(method="expm"),
    fs.PositiveSemidefinite(),
    fs.PositiveSemidefinite(rank=1),
    fs.CholeskyFactor(),
    fs.Correlation(),
    fs.DoublyStochastic(),
]


def _bad_values(n, dtype, batch):
    gen = torch.Generator().manual_seed(18)
    shape = (*batch, n, n)
    big = torch.finfo(dtype).max
    random = torch.randn(shape, generator=gen, dtype=dtype)
    u = torch.randn((*batch, n, 1), generator=gen, dtype=dtype)
    return {
        "zeros": torch.zeros(shape, dtype=dtype),
        "ones": torch.ones(shape, dtype=dtype),
        "1e30": torch.full(shape, 1e30, dtype=dtype),
        "-1e30": torch.full(shape, -1e30, dtype=dtype),
        "max": torch.full(shape, big, dtype=dtype),
        "1e30 random": 1e30 * random,
        "rank one": u * u.mT,
        "identity": torch.eye(n, dtype=dtype).expand(shape),
        "-identity": -torch.eye(n, dtype=dtype).expand(shape),
        "random": random,
        "nan": torch.full(shape, math.nan, dtype=dtype),
    }


def _sweep(ns, batches):
    """Before: finite entries near float max made eigh/svd raise (float32 and float64) for
    PositiveDefinite, PositiveSemidefinite, Correlation, Invertible, LowRank, FixedRank and
    SpecialLinear; huge raw made the Cayley maps raise."""
    for structure in FINITE_STRUCTURES:
        for n in ns:
            for real in (torch.float32, torch.float64):
                dtype = _pair(real, structure)
                for batch in batches:
                    for name, x in _bad_values(n, dtype, batch).items():
                        where = f"{structure!r} n={n} {dtype} batch={batch} {name}"
                        try:
                            structure.project(x)
                            structure.inverse(x)
                            structure.raw_from(x)
                            assert structure.contains(x).shape == batch
                            raw = structure.init((*batch, n, n), dtype=dtype)
                            fill = x.reshape(-1)[0].item() if x.numel() else 0.0
                            parts = raw if isinstance(raw, tuple) else (raw,)
                            structure.apply(
                                tuple(torch.full_like(p, fill) for p in parts)
                                if isinstance(raw, tuple)
                                else torch.full_like(raw, fill)
                            )
                        except Exception as error:
                            raise AssertionError(f"{where}: {error}") from error


def test_finite_bad_values_never_raise():
    _sweep((1, 3), ((), (3,), (0,)))


@pytest.mark.slow
def test_finite_bad_values_never_raise_large():
    _sweep((2, 8, 17, 64), ((), (3,), (0,)))


@pytest.mark.parametrize(
    "structure", FINITE_STRUCTURES + [fs.Simplex(), fs.UnitNorm(), fs.LowRank(2)], ids=repr
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_init_on_the_meta_device(structure, dtype):
    """The Orthogonal family's init redrew out-of-range raws in a loop with .item()/.any():
    a host sync per call, and a RuntimeError on the meta device."""
    dtype = _pair(dtype, structure)
    shape = (2, 5, 5)
    meta = structure.init(shape, dtype=dtype, device="meta")
    cpu = structure.init(shape, dtype=dtype)
    for m, c in zip(
        meta if isinstance(meta, tuple) else (meta,),
        cpu if isinstance(cpu, tuple) else (cpu,),
        strict=True,
    ):
        assert m.device.type == "meta"
        assert (m.shape, m.dtype) == (c.shape, c.dtype)
