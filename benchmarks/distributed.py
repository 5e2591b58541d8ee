"""Scaling out on one machine: the sharded ensemble step on 1 and 2 processes, and the share of
communication in a step.

    OMP_NUM_THREADS=2 python benchmarks/distributed.py [--quick]    (also run by run.py)

Every group of processes is started by ``fs.distributed.run_local`` (gloo on 127.0.0.1), one
torch thread per process unless said otherwise. A step's time is the wall time of a burst of
steps between two barriers, divided by the burst, so it is the slowest rank's; each launch
gives the median over its rounds, and launches alternate between the variants. The speed-up is
measured on a machine whose 2 cores are shared: 2 processes x 1 thread need both cores, and
any other load on the machine takes from the 2-process side first. (1 process x 2 threads is
not a variant: with one core busy elsewhere, a 2-thread step took 40x-400x the 1-thread one,
measured, which says more about the machine than about the library.)

- Ensemble step: E = 64 models, n = 32, ``vmap(grad)`` + SGD over the rank's block (E / W
  members). Members are independent: no communication, except an optional all-reduce of the
  mean loss for logging, whose share of the step is reported.
- Data-parallel step: one model (an orthogonal 64 x 64 map and a rank-4 one, batch 512 split
  over the ranks), ``grad`` on the local slice, then ``all_reduce_mean`` of the gradients: the
  share of the step spent in the all-reduce (waiting included).
"""

from __future__ import annotations

import argparse
import statistics
import time

import optree
import torch
import torch.distributed as dist
from _timing import ROWS
from torch.func import functional_call, grad, grad_and_value, vmap

import functional_struct as fs
from functional_struct import distributed as fsd

E, N = 64, 32


def _latency(collective, repeats: int = 100) -> float:
    """Median seconds of ``collective()`` alone: a barrier first lines the ranks up, so
    nobody waits for a slower rank inside the timed call."""
    times = []
    for _ in range(repeats):
        dist.barrier()
        began = time.perf_counter()
        collective()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def _timed_steps(one, state: dict, rounds: int, burst: int) -> tuple[float, float]:
    """Median time of ``one()`` and median share of it in ``state["comm"]``, ranks aligned.

    Three warm-up calls, then ``rounds`` bursts of ``burst`` calls between barriers.
    """
    for _ in range(3):
        one()
    times, shares = [], []
    for _ in range(rounds):
        state["comm"] = 0.0
        dist.barrier()
        began = time.perf_counter()
        for _ in range(burst):
            one()
        dist.barrier()
        elapsed = time.perf_counter() - began
        times.append(elapsed / burst)
        shares.append(state["comm"] / elapsed)
    return statistics.median(times), statistics.median(shares)


def _ensemble_worker(rank: int, world: int, rounds: int, burst: int, log_loss: bool) -> dict:
    members = fsd.local_members(E)
    tree = fs.structure({"weight": fs.Orthogonal()})
    raw = fsd.init_members(tree, {"weight": torch.zeros(N, N)}, 0, members)
    gen = torch.Generator().manual_seed(rank)
    x = torch.randn(len(members), 64, N, generator=gen)
    y = torch.randn(len(members), 64, N, generator=gen)

    def loss(r, xb, yb):
        return (xb @ tree.apply(r)["weight"].mT - yb).square().mean()

    step = vmap(grad_and_value(loss))
    state = {"raw": raw, "comm": 0.0}

    def one():
        g, value = step(state["raw"], x, y)
        state["raw"] = {k: state["raw"][k] - 0.01 * g[k] for k in g}
        if log_loss:
            began = time.perf_counter()
            total = value.sum()
            dist.all_reduce(total)
            state["comm"] += time.perf_counter() - began

    step, share = _timed_steps(one, state, rounds, burst)
    latency = _latency(lambda: dist.all_reduce(torch.zeros(()))) if log_loss else 0.0
    return {
        "step": step,
        "comm share": share,
        "latency": latency,
    }


def _data_parallel_worker(rank: int, world: int, rounds: int, burst: int) -> dict:
    n, batch = 64, 512
    model = torch.nn.Sequential(torch.nn.Linear(n, n), torch.nn.Tanh(), torch.nn.Linear(n, n))
    tree = fs.structure({"0.weight": fs.Orthogonal(), "2.weight": fs.LowRank(4)})
    like = {k: torch.zeros_like(v) for k, v in model.named_parameters()}
    raw = optree.tree_map(lambda t: t[0], fsd.init_members(tree, like, 0, [0]), namespace="torch")
    gen = torch.Generator().manual_seed(0)
    rows = fsd.shard(batch, world, rank)
    x = torch.randn(batch, n, generator=gen)[rows.start : rows.stop]
    y = torch.randn(batch, n, generator=gen)[rows.start : rows.stop]

    def loss(r):
        return (functional_call(model, tree.apply(r), (x,)) - y).square().mean()

    gradient = grad(loss)
    state = {"raw": raw, "comm": 0.0}

    def one():
        g = gradient(state["raw"])
        began = time.perf_counter()
        g = fsd.all_reduce_mean(g)
        state["comm"] += time.perf_counter() - began
        state["raw"] = optree.tree_map(
            lambda p, d: p - 0.01 * d, state["raw"], g, namespace="torch"
        )

    step, share = _timed_steps(one, state, rounds, burst)
    g = gradient(state["raw"])
    return {
        "step": step,
        "comm share": share,
        "latency": _latency(lambda: fsd.all_reduce_mean(g)),
    }


def _row(case: str, variant: str, seconds: float, notes: str, **extra: float) -> None:
    ROWS.append(
        {
            "section": "distributed",
            "case": case,
            "variant": variant,
            "median_s": seconds,
            "notes": notes,
            **extra,
        }
    )
    print(f"| distributed | {case} | {variant} | {seconds * 1e3:9.3f} ms | | {notes} |")


def run(quick: bool, rounds: int) -> None:
    repeats = 1 if quick else 3
    burst = 5 if quick else 20
    launches = {
        "1 process x 1 thread": (1, 1),
        "2 processes x 1 thread": (2, 1),
    }
    samples: dict[str, list[float]] = {name: [] for name in launches}
    for repeat in range(repeats):
        names = list(launches)
        for name in names[repeat % len(names) :] + names[: repeat % len(names)]:
            world, threads = launches[name]
            results = fsd.run_local(
                _ensemble_worker, world, args=(rounds, burst, False), threads=threads, timeout=600
            )
            samples[name].append(max(r["step"] for r in results))
    base = samples["1 process x 1 thread"]
    for name, results in samples.items():
        t = statistics.median(results)
        speedup = statistics.median(b / r for b, r in zip(base, results, strict=True))
        _row(
            f"ensemble step, E={E}, n={N}, Orthogonal",
            name,
            t,
            f"speed-up over 1 process x 1 thread: {speedup:.2f}x (2 shared cores)",
            speedup=speedup,
        )
    logged = fsd.run_local(_ensemble_worker, 2, args=(rounds, burst, True), timeout=600)
    share = max(r["comm share"] for r in logged)
    step = max(r["step"] for r in logged)
    latency = max(r["latency"] for r in logged)
    _row(
        f"ensemble step, E={E}, n={N}, Orthogonal",
        "2 processes, loss all-reduced every step",
        step,
        f"the scalar all_reduce: {share:.1%} of the step waiting included, "
        f"{latency / step:.1%} alone ({latency * 1e6:.0f} us)",
        comm_share=share,
        comm_alone_share=latency / step,
    )
    for world in (1, 2):
        results = fsd.run_local(_data_parallel_worker, world, args=(rounds, burst), timeout=600)
        share = max(r["comm share"] for r in results)
        step = max(r["step"] for r in results)
        latency = max(r["latency"] for r in results)
        _row(
            "data-parallel step, n=64, batch 512, Orthogonal + LowRank(4)",
            f"{world} process{'es' if world > 1 else ''} x 1 thread",
            step,
            f"all_reduce_mean of the gradients: {share:.1%} of the step waiting included, "
            f"{latency / step:.1%} alone ({latency * 1e6:.0f} us)"
            + ("; one process: a copy" if world == 1 else ""),
            comm_share=share,
            comm_alone_share=latency / step,
        )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and launches")
    args = parser.parse_args(argv)
    print("| section | case | variant | median | ratio | notes |")
    print("|---|---|---|---|---|---|")
    run(args.quick, 5 if args.quick else 15)


if __name__ == "__main__":
    main()
