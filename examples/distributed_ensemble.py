"""Past one machine: a sharded ensemble and a data-parallel structured model, torch.distributed.

Part 1, the ensemble: E models, each with a rotation (fs.Orthogonal) and a covariance
(fs.PositiveDefinite) fitted to its own data. Every rank draws only its block of members (member
i's raw and data depend on (seed, i) alone, so any world size trains the same ensemble), trains
it with one vmap(grad) per step and no communication, checkpoints it with
fs.distributed.save (one key per member, written atomically), and the trained ensemble is
gathered at the end. With --check, rank 0 also trains all E members in one process and
reports the largest difference.

Part 2, data parallel: one model whose hidden map is orthogonal and whose output map has rank
2, wrapped as fs.distributed.StructuredModule (its parameters are the raw tree) in
DistributedDataParallel; each rank gets an equal slice of every batch.

    torchrun --nproc_per_node=2 examples/distributed_ensemble.py          # CPU, gloo
    python examples/distributed_ensemble.py --processes 2                 # the same, no torchrun
    python examples/distributed_ensemble.py --quick                       # small, 2 processes
    python examples/distributed_ensemble.py --processes 1 --resume DIR    # reload elsewhere
    torchrun --nnodes=2 --nproc_per_node=8 --rdzv_backend=c10d \\
        --rdzv_endpoint=HOST:29500 examples/distributed_ensemble.py --backend nccl
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import tempfile
import time

import optree
import torch
import torch.distributed as dist
from _shared import adam, gaussian_nll, violation
from torch.func import grad_and_value, vmap
from torch.nn.parallel import DistributedDataParallel

import functional_struct as fs
from functional_struct import distributed

DATA_SEED = 10_000


def ensemble_problem(n: int, device: torch.device):
    tree = fs.structure({"rotation": fs.Orthogonal(), "covariance": fs.PositiveDefinite()})
    like = {k: torch.zeros(n, n, device=device) for k in ("rotation", "covariance")}
    return tree, like


def ensemble_data(members, n: int, samples: int, device: torch.device):
    """Member i's data from (DATA_SEED, i) only: rotation pairs and covariance samples."""
    xs, ys, zs = [], [], []
    for i in members:
        gen = distributed.member_generator(DATA_SEED, i)
        truth = fs.Orthogonal().apply(fs.Orthogonal().init((n, n), generator=gen))
        x = torch.randn(samples, n, generator=gen)
        mix = torch.randn(n, n, generator=gen) / math.sqrt(n)
        cov = mix @ mix.mT + 0.1 * torch.eye(n)
        xs.append(x)
        ys.append(x @ truth.mT + 0.05 * torch.randn(samples, n, generator=gen))
        zs.append(torch.randn(samples, n, generator=gen) @ torch.linalg.cholesky(cov).mT)
    return tuple(torch.stack(t).to(device) for t in (xs, ys, zs))


def ensemble_loss(tree):
    def loss(raw, x, y, z):
        w = tree.apply(raw)
        return (x @ w["rotation"].mT - y).square().mean() + gaussian_nll(w["covariance"], z)

    return loss


def train_ensemble(tree, raw, data, members, steps, state=None, save_every=0, folder=None):
    """One vmap(grad) + Adam per step over this rank's block; checkpoints on the way.

    ``state`` is Adam's (``{"step", "m", "v"}``, empty to start); returns the raw and state.
    """
    step = vmap(grad_and_value(ensemble_loss(tree)))
    state = state or {}
    while state.get("step", 0) < steps:
        grads, _ = step(raw, *data)
        raw, state = adam(raw, grads, state, lr=0.05)
        if save_every and folder and state["step"] % save_every == 0:
            distributed.save(
                os.path.join(folder, f"step_{state['step']:06d}"),
                {"raw": raw, "m": state["m"], "v": state["v"]},
                members,
                shared={"step": torch.tensor(state["step"])},
            )
    return raw, state


def data_parallel(n: int, batch: int, steps: int, rank: int, world: int, device):
    """DDP on a StructuredModule: each rank takes an equal slice of every batch."""
    model = torch.nn.Sequential(torch.nn.Linear(n, n), torch.nn.Tanh(), torch.nn.Linear(n, n))
    model = model.to(device)
    tree = fs.structure({"0.weight": fs.Orthogonal(), "2.weight": fs.LowRank(2)})
    gen = torch.Generator().manual_seed(DATA_SEED)
    like = {k: torch.randn(v.shape, generator=gen).to(device) for k, v in model.named_parameters()}
    teacher = tree.apply(distributed.init_members(tree, like, 1, [0]))
    first = lambda t: t[0]  # noqa: E731  (the one member drawn)
    raw = optree.tree_map(first, distributed.init_members(tree, like, 0, [0]), namespace="torch")
    module = distributed.StructuredModule(model, tree, raw)
    ddp = DistributedDataParallel(module, device_ids=[device] if device.type == "cuda" else None)
    optimizer = torch.optim.Adam(ddp.parameters(), lr=0.02)
    rows = distributed.shard(batch, world, rank)
    losses = []
    for _ in range(steps):
        x = torch.randn(batch, n, generator=gen).to(device)
        with torch.no_grad():
            y = torch.func.functional_call(model, {k: v[0] for k, v in teacher.items()}, (x,))
        optimizer.zero_grad()
        loss = (ddp(x[rows.start : rows.stop]) - y[rows.start : rows.stop]).square().mean()
        loss.backward()
        optimizer.step()
        losses.append(distributed.all_reduce_mean(loss.detach()).item())
    weights = module.weights()
    inside = all(bool(v.all()) for v in tree.contains(weights).values())
    flat = torch.cat([p.detach().reshape(-1) for p in module.parameters()])
    everyone = [torch.empty_like(flat) for _ in range(world)]
    dist.all_gather(everyone, flat)
    same = all(torch.equal(everyone[0], other) for other in everyone)
    return {"first": losses[0], "last": losses[-1], "in set": inside, "identical": same}


def run(rank: int, world: int, args: argparse.Namespace) -> dict:
    device = torch.device("cpu")
    if args.backend == "nccl":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)))
        torch.cuda.set_device(device)
    say = print if rank == 0 else (lambda *a, **k: None)
    e, n = args.ensemble, args.size
    members = distributed.local_members(e)
    say(
        f"world size {world} ({args.backend}), E = {e} members of n = {n}; rank 0 holds "
        f"members {members.start}..{members.stop - 1}, torch threads {torch.get_num_threads()}"
    )
    tree, like = ensemble_problem(n, device)
    data = ensemble_data(members, n, args.samples, device)
    raw = distributed.init_members(tree, like, args.seed, members)
    state = None
    if args.resume:
        block = {"raw": raw, "m": raw, "v": raw}  # shapes only
        loaded, shared = distributed.load(
            args.resume, block, members, shared={"step": torch.tensor(0)}
        )
        raw = loaded["raw"]
        state = {"step": int(shared["step"]), "m": loaded["m"], "v": loaded["v"]}
        say(f"resumed {args.resume} at step {state['step']}")
    dist.barrier()
    began = time.perf_counter()
    raw, state = train_ensemble(
        tree, raw, data, members, args.steps, state, args.every, args.checkpoints
    )
    dist.barrier()
    elapsed = time.perf_counter() - began
    losses = vmap(ensemble_loss(tree))(raw, *data)
    began = time.perf_counter()
    whole = distributed.gather_members({"raw": raw, "loss": losses}, e)
    gather_time = time.perf_counter() - began
    weights = tree.apply(whole["raw"])
    inside = {k: bool(v.all()) for k, v in tree.contains(weights).items()}
    worst = max(violation(s, weights[k]) for k, s in tree.resolve(weights).items())
    say(
        f"ensemble: trained to step {state['step']} in {elapsed:.2f} s, mean final loss "
        f"{whole['loss'].mean().item():.4f}, in set: {inside}, worst violation {worst:.1e}, "
        f"gather {gather_time * 1e3:.1f} ms"
    )
    if args.every:
        say(f"checkpoints in {args.checkpoints}: {sorted(os.listdir(args.checkpoints))}")
    result = {"raw": whole["raw"], "in set": all(inside.values())}
    if args.check and rank == 0:
        cpu = torch.device("cpu")
        alone = distributed.init_members(tree, ensemble_problem(n, cpu)[1], args.seed, range(e))
        data = ensemble_data(range(e), n, args.samples, cpu)
        single, _ = train_ensemble(tree, alone, data, range(e), args.steps)
        gap = max((single[k] - whole["raw"][k].cpu()).abs().max().item() for k in single)
        say(f"the same {e} members in one process: max |raw difference| {gap:.1e}")
        result["gap"] = gap
    dist.barrier()
    dp = data_parallel(n, args.batch, args.dp_steps, rank, world, device)
    say(
        f"data parallel (DDP on StructuredModule): loss {dp['first']:.4f} -> {dp['last']:.4f}, "
        f"in set: {dp['in set']}, parameters identical on every rank: {dp['identical']}"
    )
    result["data parallel"] = dp
    return result


def torchrun_process(args: argparse.Namespace) -> dict | None:
    """This process's part of a torchrun job; rank 0's result, None on the other ranks."""
    dist.init_process_group(args.backend)
    rank = dist.get_rank()
    if args.backend == "nccl":
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    scratch = None
    try:
        if not args.checkpoints:  # one folder for every rank: rank 0 makes it and says where
            name = [tempfile.mkdtemp(prefix="fs-checkpoints-") if rank == 0 else None]
            dist.broadcast_object_list(name)
            scratch = args.checkpoints = name[0]
        result = run(rank, dist.get_world_size(), args)
        dist.barrier()
    finally:
        dist.destroy_process_group()
        if scratch and rank == 0:
            shutil.rmtree(scratch, ignore_errors=True)
    return result if rank == 0 else None


def local_processes(args: argparse.Namespace) -> dict:
    """Without torchrun: ``--processes`` gloo processes on this machine, then (``--quick``)
    one process that resumes from their first checkpoint and must end where they ended."""
    if args.backend != "gloo":
        raise SystemExit("--backend nccl needs torchrun (one process per GPU)")
    with tempfile.TemporaryDirectory(prefix="fs-checkpoints-") as scratch:
        args.checkpoints = args.checkpoints or scratch
        result = distributed.run_local(run, args.processes, args=(args,), timeout=3600)[0]
        midway = os.path.join(args.checkpoints, f"step_{args.every:06d}")
        if args.quick and args.processes != 1 and os.path.isdir(midway):
            print(f"\n1 process, resuming from {midway} (written by {args.processes}):")
            again = argparse.Namespace(**vars(args))
            again.resume, again.every, again.check, again.dp_steps = midway, 0, False, 1
            resumed = distributed.run_local(run, 1, args=(again,), timeout=600)[0]
            gap = max(
                (resumed["raw"][k] - result["raw"][k]).abs().max().item() for k in result["raw"]
            )
            print(f"max |raw difference| from the uninterrupted run: {gap:.1e}")
            if gap > 1e-4:
                raise SystemExit("resuming on another world size changed the result")
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__[__doc__.index("    torchrun --nproc_per_node") :],
    )
    parser.add_argument("--ensemble", "-e", type=int, default=32, help="members (E)")
    parser.add_argument("--size", "-n", type=int, default=16, help="matrix size n")
    parser.add_argument("--steps", type=int, default=200, help="ensemble Adam steps")
    parser.add_argument("--samples", type=int, default=128, help="data points per member")
    parser.add_argument("--seed", type=int, default=0, help="ensemble seed")
    parser.add_argument("--every", type=int, default=50, help="checkpoint every this many steps")
    parser.add_argument("--checkpoints", help="checkpoint folder (default: a temporary one)")
    parser.add_argument("--resume", metavar="DIR", help="a checkpoint to continue from")
    parser.add_argument("--check", action="store_true", help="compare with one process")
    parser.add_argument("--batch", type=int, default=64, help="data-parallel batch (global)")
    parser.add_argument("--dp-steps", type=int, default=100, help="data-parallel steps")
    parser.add_argument("--backend", choices=("gloo", "nccl"), default="gloo")
    parser.add_argument(
        "--processes", type=int, default=2, help="without torchrun: local gloo processes"
    )
    parser.add_argument("--quick", action="store_true", help="tiny settings, for CI")
    args = parser.parse_args(argv)
    if args.quick:
        args.ensemble, args.size, args.steps, args.samples = 5, 6, 30, 32
        args.every, args.dp_steps, args.batch, args.check = 10, 20, 16, True

    if "RANK" in os.environ:  # started by torchrun: one process of many
        result = torchrun_process(args)
        if result is None:
            return
    else:
        result = local_processes(args)
    if not (result["in set"] and result["data parallel"]["in set"]):
        raise SystemExit("a structure did not hold")
    if not result["data parallel"]["identical"]:
        raise SystemExit("data-parallel parameters differ between ranks")
    if result.get("gap", 0.0) > 1e-4:
        raise SystemExit("the sharded run differs from the single-process run")


if __name__ == "__main__":
    main()
