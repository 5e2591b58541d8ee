"""Two routes to a constrained optimum, on three problems whose optimum is known exactly.

Routes:

- **fs.optim**: the weight is a member of its set and Riemannian Adam steps along it
  (``fs.optim.riemannian_adam``: Riemannian gradient, retraction, transported momentum).
- **geoopt** (when installed): the same algorithm on geoopt's ``ManifoldParameter``, updated
  in place by ``geoopt.optim.RiemannianAdam``.
- **parametrization**: a raw tensor trained by ``torch.optim.Adam`` through ``apply`` of
  ``fs.Orthogonal()`` / ``fs.PositiveDefinite()``.

Problems:

1. **Brockett** (leading eigenspace): ``min -tr(XᵀAX)`` over Stiefel(64, 8); the optimum is
   minus the sum of the 8 largest eigenvalues of ``A``.
2. **Karcher mean** of two SPD matrices (8 x 8) in the affine-invariant distance:
   ``min (d²(X, A) + d²(X, B)) / 2``; the optimum is the geodesic midpoint, value ``d²(A, B)/4``.
3. **Orthogonal Procrustes**: ``min ‖AX - B‖²`` over O(32); the optimum is the polar factor
   of ``AᵀB`` (by SVD).

Each run reports the steps and seconds to reach ``1e-6`` relative of the optimum. Then an
ensemble: 64 Brockett runs (different seeds and learning rates) in one ``vmap`` over
``fs.optim`` against a Python loop of 64 geoopt optimizers.

Run:
    python examples/riemannian.py            # the three problems, 2000 steps at most
    python examples/riemannian.py --plot     # also objective vs step (needs matplotlib)
    python examples/riemannian.py --quick    # small sizes, for CI
"""

from __future__ import annotations

import argparse
import contextlib
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.func import grad, vmap

import functional_struct as fs

DTYPE = torch.float64
# Inductor's own lowering of some ops calls a deprecated torch helper (torch 2.13).
warnings.filterwarnings("ignore", message="`torch._prims_common.check` is deprecated")


def geoopt_or_none():
    """geoopt, imported quietly (its import warns about torch.jit.script), or None."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            import geoopt
        except ImportError:
            return None
    return geoopt


@dataclass
class Problem:
    name: str
    structure: fs.AbstractStructure
    shape: tuple[int, ...]
    loss: Callable[[torch.Tensor], torch.Tensor]
    optimum: float
    geoopt_manifold: str  # "stiefel" or "spd"
    lr: float


def brockett(n: int = 64, k: int = 8, seed: int = 0) -> Problem:
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=DTYPE))
    eigenvalues = torch.linspace(1.0, 10.0, n, dtype=DTYPE)
    a = q @ torch.diag(eigenvalues) @ q.T
    return Problem(
        f"Brockett, Stiefel({n}, {k})",
        fs.Orthogonal(),
        (n, k),
        lambda x: -torch.trace(x.mT @ a @ x),
        -float(eigenvalues[-k:].sum()),
        "stiefel",
        0.02,
    )


def _distance2(x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """The squared affine-invariant distance: Σ log² of the eigenvalues of L⁻¹ A L⁻ᵀ, X = L Lᵀ."""
    factor = torch.linalg.cholesky(x)
    left = torch.linalg.solve_triangular(factor, a, upper=False)
    whitened = torch.linalg.solve_triangular(factor, left.mT, upper=False)
    return torch.linalg.eigvalsh((whitened + whitened.mT) / 2).log().square().sum()


def karcher(n: int = 8, seed: int = 1) -> Problem:
    gen = torch.Generator().manual_seed(seed)
    m1 = torch.randn(n, n, generator=gen, dtype=DTYPE)
    m2 = torch.randn(n, n, generator=gen, dtype=DTYPE)
    a = m1 @ m1.T / n + 0.5 * torch.eye(n, dtype=DTYPE)
    b = m2 @ m2.T / n + 0.5 * torch.eye(n, dtype=DTYPE)
    return Problem(
        f"Karcher mean, SPD({n})",
        fs.PositiveDefinite(),
        (n, n),
        lambda x: (_distance2(x, a) + _distance2(x, b)) / 2,
        float(_distance2(a, b)) / 4,
        "spd",
        0.05,
    )


def procrustes(n: int = 32, seed: int = 2) -> Problem:
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(n, n, generator=gen, dtype=DTYPE)
    truth, _ = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=DTYPE))
    b = a @ truth + 0.3 * torch.randn(n, n, generator=gen, dtype=DTYPE)
    u, _, vh = torch.linalg.svd(a.T @ b)
    best = u @ vh
    return Problem(
        f"Procrustes, O({n})",
        fs.Orthogonal(),
        (n, n),
        lambda x: (a @ x - b).square().sum(),
        float((a @ best - b).square().sum()),
        "stiefel",
        0.02,
    )


def _start(problem: Problem, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(100 + seed)
    return problem.structure.apply(
        problem.structure.init(problem.shape, generator=gen, dtype=DTYPE)
    )


def _relative(problem: Problem, value: float) -> float:
    return abs(value - problem.optimum) / abs(problem.optimum)


@dataclass
class Run:
    route: str
    steps: int | None  # to reach the target; None if it did not within the budget
    seconds: float
    final: float
    curve: list[float]
    in_set: bool


def run_fs(problem: Problem, max_steps: int, target: float, seed: int = 0) -> Run:
    opt = fs.optim.riemannian_adam(problem.structure, lr=problem.lr)
    step = torch.compile(lambda x, s: opt.update(x, grad(problem.loss)(x), s), fullgraph=True)
    x = _start(problem, seed)
    step(x, opt.init(x))  # compile outside the clock
    state = opt.init(x)
    curve, reached, start = [], None, time.perf_counter()
    for i in range(max_steps):
        x, state = step(x, state)
        value = float(problem.loss(x))
        curve.append(_relative(problem, value))
        if reached is None and curve[-1] < target:
            reached = i + 1
            break
    seconds = time.perf_counter() - start
    inside = bool(problem.structure.contains(x))
    return Run("fs.optim (Riemannian Adam)", reached, seconds, curve[-1], curve, inside)


def run_geoopt(problem: Problem, max_steps: int, target: float, seed: int = 0) -> Run | None:
    geoopt = geoopt_or_none()
    if geoopt is None:
        return None
    manifold = geoopt.EuclideanStiefel() if problem.geoopt_manifold == "stiefel" else None
    if manifold is None:
        manifold = geoopt.SymmetricPositiveDefinite()
    point = geoopt.ManifoldParameter(_start(problem, seed).clone(), manifold=manifold)
    opt = geoopt.optim.RiemannianAdam([point], lr=problem.lr)
    curve, reached, start = [], None, time.perf_counter()
    for i in range(max_steps):
        opt.zero_grad()
        loss = problem.loss(point)
        loss.backward()
        opt.step()
        with torch.no_grad():
            curve.append(_relative(problem, float(problem.loss(point))))
        if curve[-1] < target:
            reached = i + 1
            break
    seconds = time.perf_counter() - start
    inside = bool(problem.structure.contains(point.detach()))
    return Run("geoopt RiemannianAdam", reached, seconds, curve[-1], curve, inside)


def run_parametrization(problem: Problem, max_steps: int, target: float, seed: int = 0) -> Run:
    s = problem.structure
    raw = s.inverse(_start(problem, seed)).clone().requires_grad_(True)
    opt = torch.optim.Adam([raw], lr=problem.lr)
    curve, reached, start = [], None, time.perf_counter()
    for i in range(max_steps):
        opt.zero_grad()
        loss = problem.loss(s.apply(raw))
        loss.backward()
        opt.step()
        with torch.no_grad():
            curve.append(_relative(problem, float(problem.loss(s.apply(raw)))))
        if curve[-1] < target:
            reached = i + 1
            break
    seconds = time.perf_counter() - start
    inside = bool(s.contains(s.apply(raw).detach()))
    route = f"parametrization (fs.{type(s).__name__} + Adam)"
    return Run(route, reached, seconds, curve[-1], curve, inside)


def ensemble(problem: Problem, members: int, steps: int) -> dict:
    """``members`` runs with their own seeds and learning rates: one vmap vs a geoopt loop.

    Both run the same Riemannian Adam (fs.optim is geoopt's step for step on the Euclidean
    Stiefel manifold), so the final objectives must agree to rounding.
    """
    lrs = torch.logspace(math.log10(problem.lr / 2), math.log10(problem.lr * 2), members)
    starts = torch.stack([_start(problem, seed) for seed in range(members)])
    opt = fs.optim.riemannian_adam(problem.structure, lr=problem.lr)
    state = vmap(opt.init)(starts)._replace(lr=lrs.to(DTYPE))
    step = torch.compile(vmap(lambda x, s: opt.update(x, grad(problem.loss)(x), s)), fullgraph=True)
    x, s = starts, state
    for _ in range(3):  # compile (and settle) outside the clock
        x, s = step(x, s)
    x, s = starts, state
    start = time.perf_counter()
    for _ in range(steps):
        x, s = step(x, s)
    fs_seconds = time.perf_counter() - start
    fs_final = torch.stack([problem.loss(m) for m in x])
    result = {"members": members, "steps": steps, "fs_seconds": fs_seconds, "fs_final": fs_final}
    geoopt = geoopt_or_none()
    if geoopt is None:
        return result
    points = [
        geoopt.ManifoldParameter(starts[i].clone(), manifold=geoopt.EuclideanStiefel())
        for i in range(members)
    ]
    optimizers = [
        geoopt.optim.RiemannianAdam([p], lr=float(lr)) for p, lr in zip(points, lrs, strict=True)
    ]
    start = time.perf_counter()
    for _ in range(steps):
        for p, o in zip(points, optimizers, strict=True):
            o.zero_grad()
            problem.loss(p).backward()
            o.step()
    result["geoopt_seconds"] = time.perf_counter() - start
    with torch.no_grad():
        result["geoopt_final"] = torch.stack([problem.loss(p) for p in points])
    return result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--max-steps", type=int, default=2000)
    parser.add_argument("--target", type=float, default=1e-6)
    parser.add_argument("--members", type=int, default=64)
    parser.add_argument("--plot", action="store_true", help="objective vs step (matplotlib)")
    parser.add_argument("--quick", action="store_true", help="small sizes and budgets (CI)")
    args = parser.parse_args(argv)
    if args.quick:
        problems = [brockett(16, 4), karcher(4), procrustes(8)]
        args.max_steps, args.members, ensemble_steps = 300, 8, 20
    else:
        problems = [brockett(), karcher(), procrustes()]
        ensemble_steps = 200
    print(f"steps (and seconds) to reach {args.target:g} relative of the optimum, float64")
    print("| problem | route | steps | seconds | final relative error | in the set |")
    print("| --- | --- | --- | --- | --- | --- |")
    curves = {}
    for problem in problems:
        runs = [
            run_fs(problem, args.max_steps, args.target),
            run_geoopt(problem, args.max_steps, args.target),
            run_parametrization(problem, args.max_steps, args.target),
        ]
        for r in runs:
            if r is None:
                continue
            steps = r.steps if r.steps is not None else f"> {args.max_steps}"
            print(
                f"| {problem.name} | {r.route} | {steps} | {r.seconds:.2f} | {r.final:.2e} | "
                f"{r.in_set} |"
            )
            curves[(problem.name, r.route)] = r.curve
    result = ensemble(problems[0], args.members, ensemble_steps)
    line = (
        f"\nEnsemble, {problems[0].name}: {result['members']} runs x {result['steps']} steps "
        f"(own seeds and learning rates): fs.optim under vmap {result['fs_seconds']:.2f} s"
    )
    if "geoopt_seconds" in result:
        gap = (result["fs_final"] - result["geoopt_final"]).abs().max()
        line += (
            f", a loop of geoopt optimizers {result['geoopt_seconds']:.2f} s "
            f"({result['geoopt_seconds'] / result['fs_seconds']:.1f}x); "
            f"largest difference of final objectives {float(gap):.2e}"
        )
    print(line)
    if args.plot:
        with contextlib.suppress(ImportError):
            import matplotlib.pyplot as plt

            fig, axes = plt.subplots(1, len(problems), figsize=(5 * len(problems), 4))
            for ax, problem in zip(axes, problems, strict=True):
                for (name, route), curve in curves.items():
                    if name == problem.name:
                        ax.semilogy(curve, label=route)
                ax.set_title(problem.name)
                ax.set_xlabel("step")
                ax.set_ylabel("relative error")
                ax.legend()
            fig.tight_layout()
            fig.savefig("riemannian.png")
            print("wrote riemannian.png")


if __name__ == "__main__":
    main()
