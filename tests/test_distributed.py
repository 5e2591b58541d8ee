"""fs.distributed: sharded ensembles, data-parallel training and checkpoints across processes.

Every multi-process test runs exactly two gloo processes on 127.0.0.1 through
``distributed.run_local`` (spawned, bounded by a timeout, killed on overrun) and compares with
the same computation in this single process. float64 throughout, so that "equal to float
tolerance" is tight. Worker functions live at module level: spawned processes import them.
"""

import os

import optree
import pytest
import torch
import torch.distributed as dist
from torch.func import functional_call, grad, grad_and_value, vmap
from torch.multiprocessing import ProcessExitedException, ProcessRaisedException
from torch.nn.parallel import DistributedDataParallel
from torch.nn.utils import parametrize

import functional_struct as fs
from functional_struct import distributed

TIMEOUT = 90.0
N = 4
SIZE = 5  # members: uneven blocks of 3 and 2 on two ranks
SEED, DATA_SEED = 0, 1000
TREE = fs.structure({"q": fs.Orthogonal(), "p": fs.PositiveDefinite(), "l": fs.LowRank(2)})
LIKE = {k: torch.zeros(N, N, dtype=torch.float64) for k in ("q", "p", "l")}
TOL = {"atol": 1e-10, "rtol": 1e-9}


def _map(fn, *trees):
    return optree.tree_map(fn, *trees, none_is_leaf=True, namespace="torch")


def _close(a, b, **tol):
    for x, y in zip(
        optree.tree_leaves(a, namespace="torch"),
        optree.tree_leaves(b, namespace="torch"),
        strict=True,
    ):
        torch.testing.assert_close(x, y, **(tol or TOL))


def _equal(a, b):
    pairs = zip(
        optree.tree_leaves(a, namespace="torch"),
        optree.tree_leaves(b, namespace="torch"),
        strict=True,
    )
    return all(torch.equal(x, y) for x, y in pairs)


# ---------------------------------------------------------------- the ensemble problem
def _data(members):
    """Each member's inputs and targets, from (DATA_SEED, i) only."""
    xs, ys = [], []
    for i in members:
        gen = distributed.member_generator(DATA_SEED, i)
        x = torch.randn(32, N, generator=gen, dtype=torch.float64)
        target = torch.randn(3, N, N, generator=gen, dtype=torch.float64)
        xs.append(x)
        ys.append(x @ target.mT)
    if not xs:
        return torch.empty(0, 32, N, dtype=torch.float64), torch.empty(
            0, 3, 32, N, dtype=torch.float64
        )
    return torch.stack(xs), torch.stack(ys)


def _loss(raw, x, y):
    w = TREE.apply(raw)
    outs = torch.stack([x @ w[k].mT for k in ("q", "p", "l")])
    return (outs - y).square().mean()


def _adam_init(raw):
    zeros = _map(torch.zeros_like, raw)
    return {"m": zeros, "v": zeros}, torch.tensor(0)


def _adam(raw, grads, moments, step, lr=0.05):
    step = step + 1
    m = _map(lambda m, g: 0.9 * m + 0.1 * g, moments["m"], grads)
    v = _map(lambda v, g: 0.999 * v + 0.001 * g * g, moments["v"], grads)
    new = _map(
        lambda p, m, v: p - lr * (m / (1 - 0.9**step)) / ((v / (1 - 0.999**step)).sqrt() + 1e-8),
        raw,
        m,
        v,
    )
    return new, {"m": m, "v": v}, step


def _train(raw, moments, step, x, y, steps):
    """Each member trains on its own data: one vmap(grad) per step, no communication."""
    value_and_grad = vmap(grad_and_value(_loss))
    for _ in range(steps):
        grads, _ = value_and_grad(raw, x, y)
        raw, moments, step = _adam(raw, grads, moments, step)
    return raw, moments, step


def _single_process(steps):
    raw = distributed.init_members(TREE, LIKE, SEED, range(SIZE))
    x, y = _data(range(SIZE))
    moments, step = _adam_init(raw)
    return (raw, *_train(raw, moments, step, x, y, steps), x, y)


# ---------------------------------------------------------------- pure helpers
def test_shards_tile_the_ensemble_axis_in_order():
    for size in range(8):
        for world in range(1, 5):
            blocks = [distributed.shard(size, world, r) for r in range(world)]
            assert [i for b in blocks for i in b] == list(range(size))
            assert max(map(len, blocks)) - min(map(len, blocks)) <= 1


def test_bad_arguments_raise_and_name_what_was_expected():
    with pytest.raises(ValueError, match="rank must be < world_size = 2, got 2"):
        distributed.shard(4, 2, 2)
    with pytest.raises(TypeError, match="size must be an int, got float"):
        distributed.shard(4.0, 2, 0)
    with pytest.raises(ValueError, match="world_size must be an int >= 1, got 0"):
        distributed.shard(4, 0, 0)
    with pytest.raises(TypeError, match="seed must be an int, got bool"):
        distributed.member_seed(True, 0)
    with pytest.raises(TypeError, match="structure tree"):
        distributed.init_members(fs.Orthogonal(), LIKE, 0, range(2))
    with pytest.raises(ValueError, match=r"leading member dim of size 3.*shape \(2, 4\).*'w'"):
        distributed.gather_members({"w": torch.zeros(2, 4)}, size=3)
    with pytest.raises(TypeError, match="floating-point tensor.*torch.int64 at 'w'"):
        distributed.all_reduce_mean({"w": torch.zeros(2, dtype=torch.long)})
    with pytest.raises(TypeError, match="must be a tensor, got int at 'step'"):
        distributed.all_reduce_mean({"step": 3})


def test_member_init_depends_only_on_seed_and_index():
    whole = distributed.init_members(TREE, LIKE, SEED, range(SIZE))
    for world in (1, 2, 3):
        blocks = [
            distributed.init_members(TREE, LIKE, SEED, distributed.shard(SIZE, world, r))
            for r in range(world)
        ]
        assert _equal(whole, _map(lambda *xs: torch.cat(xs), *blocks))
    alone = distributed.init_members(TREE, LIKE, SEED, [3])
    assert _equal(alone, _map(lambda x: x[3:4], whole))
    assert not torch.equal(whole["q"][0], whole["q"][1])
    assert isinstance(whole["l"], tuple)
    empty = distributed.init_members(TREE, LIKE, SEED, range(0))
    assert empty["q"].shape == (0, N, N)


def test_member_init_does_not_depend_on_what_ran_before():
    """A tree's ``init`` draws its leaves from one generator in the order the tree visits them,
    and a ``vmap(grad)`` through the tree can change that order for later calls; members draw
    one generator per leaf, so their raws stay put."""
    before = distributed.init_members(TREE, LIKE, SEED, range(2))
    raw = distributed.init_members(TREE, LIKE, SEED + 1, range(SIZE))
    vmap(grad(_loss))(raw, *_data(range(SIZE)))
    assert _equal(before, distributed.init_members(TREE, LIKE, SEED, range(2)))


def test_single_process_checkpoint_refuses_to_overwrite_and_names_an_unfinished_save(tmp_path):
    raw = distributed.init_members(TREE, LIKE, SEED, range(2))
    path = distributed.save(tmp_path / "a", raw, range(2))
    with pytest.raises(ValueError, match="exists; checkpoints are never overwritten"):
        distributed.save(path, raw, range(2))
    (tmp_path / "b.partial").mkdir()
    with pytest.raises(ValueError, match=r"not a complete checkpoint.*b\.partial"):
        distributed.load(tmp_path / "b", raw, range(2))
    back, shared = distributed.load(path, raw, [1, 0])
    assert shared is None
    assert _equal(back, _map(lambda x: x.flip(0), raw))


# ---------------------------------------------------------------- sharded ensemble
def _sharded_ensemble(rank, world, steps):
    members = distributed.local_members(SIZE)
    raw0 = distributed.init_members(TREE, LIKE, SEED, members)
    x, y = _data(members)
    moments, step = _adam_init(raw0)
    raw, _, _ = _train(raw0, moments, step, x, y, steps)
    losses = vmap(_loss)(raw, x, y)
    gathered = distributed.gather_members(
        {"raw": raw, "weights": TREE.apply(raw), "loss": losses}, SIZE
    )
    return {"members": list(members), "init": raw0, "gathered": gathered}


def test_two_process_sharded_ensemble_equals_the_single_process_vmap_run():
    steps = 20
    results = distributed.run_local(_sharded_ensemble, 2, args=(steps,), timeout=TIMEOUT)
    raw0, raw, _, _, x, y = _single_process(steps)
    assert [r["members"] for r in results] == [[0, 1, 2], [3, 4]]
    for r in results:  # world-size-invariant init, bit for bit
        assert _equal(r["init"], _map(lambda t, m=r["members"]: t[m[0] : m[-1] + 1], raw0))
    assert _equal(results[0]["gathered"], results[1]["gathered"])  # the same on every rank
    gathered = results[0]["gathered"]
    _close(gathered["raw"], raw)  # Orthogonal, PositiveDefinite and the factored LowRank
    _close(gathered["loss"], vmap(_loss)(raw, x, y))
    _close(gathered["weights"], TREE.apply(raw))
    assert all(v.all() for v in TREE.contains(gathered["weights"]).values())
    assert (gathered["loss"] < vmap(_loss)(raw0, x, y)).all()


# ---------------------------------------------------------------- data-parallel training
BATCH = 32
MODEL_SPEC = {"0.weight": fs.Orthogonal(), "2.weight": fs.LowRank(2)}
MODEL_TREE = fs.structure(MODEL_SPEC)


def _model():
    return torch.nn.Sequential(
        torch.nn.Linear(N, N), torch.nn.Tanh(), torch.nn.Linear(N, N)
    ).double()


_TEMPLATE = _model()


def _model_raw_and_batch():
    """The same start and batch on every rank: the biases, which no structure governs, are
    copies of ``like``, so ``like`` is drawn from a seeded generator, not torch's global one."""
    gen = torch.Generator().manual_seed(DATA_SEED)
    like = {
        k: torch.randn(v.shape, generator=gen, dtype=v.dtype)
        for k, v in _TEMPLATE.named_parameters()
    }
    raw = _map(lambda t: t[0], distributed.init_members(MODEL_TREE, like, SEED, [0]))
    x = torch.randn(BATCH, N, generator=gen, dtype=torch.float64)
    return raw, x, torch.sin(3 * x).flip(-1)


def _parametrized(raw):
    model = _model()
    for name in ("0", "2"):
        structure = MODEL_SPEC[f"{name}.weight"]
        layer = model[int(name)]
        parametrize.register_parametrization(
            layer, "weight", fs.as_parametrization(structure), unsafe=True
        )
        parts = raw[f"{name}.weight"]
        with torch.no_grad():
            for i, part in enumerate(parts if isinstance(parts, tuple) else (parts,)):
                suffix = "original" if not isinstance(parts, tuple) else f"original{i}"
                getattr(layer.parametrizations.weight, suffix).copy_(part)
            layer.bias.copy_(raw[f"{name}.bias"])
    return model


def _parametrized_raw(model):
    out = {}
    for name in ("0", "2"):
        layer = model[int(name)]
        originals = [p.detach().clone() for p in layer.parametrizations.weight.parameters()]
        out[f"{name}.weight"] = originals[0] if len(originals) == 1 else tuple(originals)
        out[f"{name}.bias"] = layer.bias.detach().clone()
    return out


def _torch_optim(module, x, y, steps, wrap=lambda m: m):
    wrapped = wrap(module)
    optimizer = torch.optim.Adam(wrapped.parameters(), lr=0.03)
    for _ in range(steps):
        optimizer.zero_grad()
        (wrapped(x) - y).square().mean().backward()
        optimizer.step()


def _functional_loss(raw, x, y):
    return (functional_call(_TEMPLATE, MODEL_TREE.apply(raw), (x,)) - y).square().mean()


def _functional(raw, x, y, steps, reduce=lambda g: g):
    moments, step = _adam_init(raw)
    for _ in range(steps):
        grads = reduce(grad(_functional_loss)(raw, x, y))
        raw, moments, step = _adam(raw, grads, moments, step, lr=0.03)
    return raw


def _data_parallel(rank, world, steps):
    raw, x, y = _model_raw_and_batch()
    rows = distributed.shard(BATCH, world, rank)
    x, y = x[rows.start : rows.stop], y[rows.start : rows.stop]
    out = {}
    module = distributed.StructuredModule(_model(), MODEL_TREE, raw)
    _torch_optim(module, x, y, steps, DistributedDataParallel)
    out["structured module"] = _map(lambda t: t.detach().clone(), module.raw())
    model = _parametrized(raw)
    _torch_optim(model, x, y, steps, DistributedDataParallel)
    out["parametrize"] = _parametrized_raw(model)
    out["functional"] = _functional(raw, x, y, steps, distributed.all_reduce_mean)
    flat = torch.cat([t.reshape(-1) for t in optree.tree_leaves(out, namespace="torch")])
    every = [torch.empty_like(flat) for _ in range(world)]
    dist.all_gather(every, flat)
    out["identical on every rank"] = all(torch.equal(every[0], e) for e in every)
    pair = {"a": torch.full((2,), float(rank)), "b": torch.full((2,), 10.0 + rank)}
    if rank == 1:  # the same keys built in the other order; grad has run, so optree keeps it
        pair = dict(reversed(list(pair.items())))
    out["mean of a pair"] = distributed.all_reduce_mean(pair)
    return out


def test_data_parallel_training_equals_full_batch_training_on_one_process():
    """DDP averages gradients; with equal shards the mean of the shards' mean losses is the
    full batch's mean loss, so two processes take the single process's full-batch steps."""
    steps = 8
    results = distributed.run_local(_data_parallel, 2, args=(steps,), timeout=TIMEOUT)
    raw, x, y = _model_raw_and_batch()
    module = distributed.StructuredModule(_model(), MODEL_TREE, raw)
    _torch_optim(module, x, y, steps)
    model = _parametrized(raw)
    _torch_optim(model, x, y, steps)
    expected = {
        "structured module": _map(lambda t: t.detach(), module.raw()),
        "parametrize": _parametrized_raw(model),
        "functional": _functional(raw, x, y, steps),
    }
    for r in results:
        assert r["identical on every rank"]
        assert torch.equal(r["mean of a pair"]["a"], torch.full((2,), 0.5))
        assert torch.equal(r["mean of a pair"]["b"], torch.full((2,), 10.5))
    for route, want in expected.items():
        got = results[0][route]
        _close(got, want)
        assert _equal(got, results[1][route])
        weights = MODEL_TREE.apply(got)
        assert all(v.all() for v in MODEL_TREE.contains(weights).values()), route
        assert not torch.allclose(got["0.weight"], raw["0.weight"]), route  # it trained


# ---------------------------------------------------------------- checkpoints
def _checkpoint_state(raw, moments):
    return {"raw": raw, "m": moments["m"], "v": moments["v"]}


def _resume(path, members, steps, group_size):
    """Load members from ``path``, train ``steps`` more, and return the whole ensemble."""
    block = distributed.init_members(TREE, LIKE, SEED + 1, members)  # shapes only
    like = _checkpoint_state(block, _adam_init(block)[0])
    state, shared = distributed.load(path, like, members, shared={"step": torch.tensor(0)})
    x, y = _data(members)
    raw, _, _ = _train(state["raw"], state, shared["step"], x, y, steps)
    return distributed.gather_members(raw, group_size)


def _two_process_checkpoints(rank, world, root, steps):
    members = distributed.local_members(SIZE)
    out = {"from one process": _resume(os.path.join(root, "one"), members, steps, SIZE)}
    raw = distributed.init_members(TREE, LIKE, SEED, members)
    x, y = _data(members)
    raw, moments, step = _train(raw, *_adam_init(raw), x, y, steps)
    shared = {"step": step}
    distributed.save(
        os.path.join(root, "two"), _checkpoint_state(raw, moments), members, shared=shared
    )
    raw, _, _ = _train(raw, moments, step, x, y, steps)
    out["straight through"] = distributed.gather_members(raw, SIZE)
    return out


def test_checkpoints_move_between_one_and_two_processes_and_training_continues(tmp_path):
    steps = 5
    raw = distributed.init_members(TREE, LIKE, SEED, range(SIZE))
    x, y = _data(range(SIZE))
    raw, moments, step = _train(raw, *_adam_init(raw), x, y, steps)
    distributed.save(
        tmp_path / "one", _checkpoint_state(raw, moments), range(SIZE), shared={"step": step}
    )
    uninterrupted, _, _ = _train(raw, moments, step, x, y, steps)

    results = distributed.run_local(
        _two_process_checkpoints, 2, args=(str(tmp_path), steps), timeout=TIMEOUT
    )
    assert _equal(results[0], results[1])
    _close(results[0]["from one process"], uninterrupted)  # written by 1, read by 2
    _close(results[0]["straight through"], uninterrupted)
    from_two = _resume(tmp_path / "two", range(SIZE), steps, SIZE)  # written by 2, read by 1
    _close(from_two, uninterrupted)
    assert sorted(os.listdir(tmp_path)) == ["one", "two"]


def _dies_in_second_save(rank, world, root, steps):
    from torch.distributed.checkpoint.filesystem import FileSystemWriter

    members = distributed.local_members(SIZE)
    raw = distributed.init_members(TREE, LIKE, SEED, members)
    x, y = _data(members)
    moments, step = _adam_init(raw)
    for k in (1, 2):
        raw, moments, step = _train(raw, moments, step, x, y, steps)
        if k == 2 and rank == 1:
            original = FileSystemWriter.write_data

            def write_then_die(self, plan, planner, original=original):
                original(self, plan, planner).wait()  # this rank's data file is on disk
                os._exit(1)

            FileSystemWriter.write_data = write_then_die
        state = _checkpoint_state(raw, moments)
        distributed.save(os.path.join(root, f"step_{k}"), state, members, shared={"step": step})


def test_a_rank_that_dies_mid_save_leaves_the_last_checkpoint_loadable(tmp_path):
    steps = 3
    with pytest.raises((ProcessExitedException, ProcessRaisedException)):
        distributed.run_local(_dies_in_second_save, 2, args=(str(tmp_path), steps), timeout=TIMEOUT)
    assert (tmp_path / "step_1" / ".metadata").is_file()
    assert not (tmp_path / "step_2").exists()
    assert (tmp_path / "step_2.partial").is_dir()  # the interrupted save, never renamed
    with pytest.raises(ValueError, match="did not finish"):
        distributed.load(tmp_path / "step_2", {"w": torch.zeros(1)}, [0])

    resumed = _resume(tmp_path / "step_1", range(SIZE), 2 * steps, SIZE)
    _, uninterrupted, _, _, _, _ = _single_process(3 * steps)
    _close(resumed, uninterrupted)
    raw = distributed.init_members(TREE, LIKE, SEED, range(SIZE))
    distributed.save(tmp_path / "step_2", raw, range(SIZE))  # the stale partial is replaced
    assert sorted(os.listdir(tmp_path)) == ["step_1", "step_2"]


def test_structured_module_parameters_are_in_path_order_whatever_dicts_flatten_in():
    """A state dict written before any torch.func call loads after one (and across ranks)."""
    import subprocess
    import sys

    script = (
        "import torch, functional_struct as fs\n"
        "from functional_struct.distributed import StructuredModule\n"
        "from torch.func import grad\n"
        "model = torch.nn.Linear(3, 2)\n"
        "tree = fs.structure({'weight': fs.LowRank(1)})\n"
        "gen = torch.Generator().manual_seed(0)\n"
        "raw = tree.init(dict(model.named_parameters()), generator=gen)\n"
        "before = StructuredModule(model, tree, raw)\n"
        "grad(lambda x: x.sum())(torch.ones(2))\n"
        "after = StructuredModule(model, tree, raw)\n"
        "after.load_state_dict(before.state_dict())\n"
        "x = torch.randn(4, 3)\n"
        "assert torch.equal(before(x), after(x))\n"
        "assert [tuple(p.shape) for p in after.parameters()] == [(2,), (2, 1), (3, 1)]\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
