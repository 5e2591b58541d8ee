"""Riemannian optimization: fs.optim against geoopt and the parametrization route.

Time per optimizer step of the three routes of ``examples/riemannian.py`` on its three
problems (interleaved rounds, ratios to fs.optim), and the ensemble: 64 runs (own seeds and
learning rates) in one compiled ``vmap`` against a Python loop over 64 geoopt optimizers.
Steps to reach the optimum are the example's to report; this times the steps.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from _timing import report, timed
from torch.func import grad, vmap

import functional_struct as fs

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
import riemannian as example  # noqa: E402 - the example's problems, once


def step_costs(problem: example.Problem, rounds: int) -> None:
    s = problem.structure
    opt = fs.optim.riemannian_adam(s, lr=problem.lr)
    fs_step = torch.compile(lambda x, st: opt.update(x, grad(problem.loss)(x), st), fullgraph=True)
    fs_state = {"x": example._start(problem, 0), "s": None}
    fs_state["s"] = opt.init(fs_state["x"])

    def fs_call():
        fs_state["x"], fs_state["s"] = fs_step(fs_state["x"], fs_state["s"])

    raw = s.inverse(example._start(problem, 0)).clone().requires_grad_(True)
    adam = torch.optim.Adam([raw], lr=problem.lr)

    def parametrization_call():
        adam.zero_grad()
        problem.loss(s.apply(raw)).backward()
        adam.step()

    variants = {"fs.optim (compiled)": fs_call, "parametrization + Adam": parametrization_call}
    geoopt = example.geoopt_or_none()
    if geoopt is not None:
        if problem.geoopt_manifold == "stiefel":
            manifold = geoopt.EuclideanStiefel()
        else:
            manifold = geoopt.SymmetricPositiveDefinite()
        point = geoopt.ManifoldParameter(example._start(problem, 0).clone(), manifold=manifold)
        g_opt = geoopt.optim.RiemannianAdam([point], lr=problem.lr)

        def geoopt_call():
            g_opt.zero_grad()
            problem.loss(point).backward()
            g_opt.step()

        variants["geoopt RiemannianAdam"] = geoopt_call
    report("Riemannian step", problem.name, timed(variants, rounds), "fs.optim (compiled)")


def ensemble_cost(problem: example.Problem, members: int, rounds: int) -> None:
    geoopt = example.geoopt_or_none()
    starts = torch.stack([example._start(problem, seed) for seed in range(members)])
    lrs = torch.linspace(problem.lr / 2, problem.lr * 2, members, dtype=starts.dtype)
    opt = fs.optim.riemannian_adam(problem.structure, lr=problem.lr)
    step = torch.compile(vmap(lambda x, s: opt.update(x, grad(problem.loss)(x), s)), fullgraph=True)
    box = {"x": starts, "s": vmap(opt.init)(starts)._replace(lr=lrs)}

    def fs_call():
        box["x"], box["s"] = step(box["x"], box["s"])

    variants = {f"fs.optim, vmap of {members}": fs_call}
    if geoopt is not None:
        points = [
            geoopt.ManifoldParameter(starts[i].clone(), manifold=geoopt.EuclideanStiefel())
            for i in range(members)
        ]
        optimizers = [
            geoopt.optim.RiemannianAdam([p], lr=float(lr))
            for p, lr in zip(points, lrs, strict=True)
        ]

        def geoopt_call():
            for p, o in zip(points, optimizers, strict=True):
                o.zero_grad()
                problem.loss(p).backward()
                o.step()

        variants[f"geoopt, loop of {members}"] = geoopt_call
    report(
        "Riemannian ensemble step",
        f"{problem.name}, {members} runs",
        timed(variants, rounds),
        f"fs.optim, vmap of {members}",
    )


def run(quick: bool, rounds: int) -> None:
    problems = (
        [example.brockett(16, 4), example.karcher(4), example.procrustes(8)]
        if quick
        else [example.brockett(), example.karcher(), example.procrustes()]
    )
    for problem in problems:
        step_costs(problem, rounds)
    ensemble_cost(problems[0], 8 if quick else 64, rounds)
