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
3. **Orthogonal Procrustes**: ``min ‖AX - B‖²`` over SO(32); the optimum is the polar factor
   of ``AᵀB`` (by SVD).

The Riemannian routes use SGD with momentum 0.9 (fs.optim's ``riemannian_sgd``, geoopt's
``RiemannianSGD``: the same algorithm), the parametrization route Adam; each route gets its
best learning rate from the grid ``LEARNING_RATES`` (fewest steps to the target). Adam on a
manifold (``riemannian_adam``) takes steps about ``lr`` long whatever the gradient, so with a
fixed rate it circles the optimum near 1e-6 rather than reaching it: the ensemble below uses
it, where the comparison is the time per step and agreement with geoopt.

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
LEARNING_RATES = (0.3, 0.1, 0.03, 0.01, 0.003, 0.001)
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
    lr: float  # the ensemble's central Adam learning rate


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
    """The squared affine-invariant distance: Σ log² of the eigenvalues of L⁻¹ A L⁻ᵀ, X = L Lᵀ.

    NaN where ``x`` is not positive-definite (a route that left the set).
    """
    factor, info = torch.linalg.cholesky_ex(x)
    ok = (info == 0) & torch.isfinite(x).all()
    factor = torch.where(ok, factor, torch.eye(x.shape[-1], dtype=x.dtype))
    left = torch.linalg.solve_triangular(factor, a, upper=False)
    whitened = torch.linalg.solve_triangular(factor, left.mT, upper=False)
    value = torch.linalg.eigvalsh((whitened + whitened.mT) / 2).log().square().sum()
    return torch.where(ok, value, torch.nan)


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
    """Over rotations: a path along the set cannot leave the component it starts in, so the
    problem is posed on SO(n) (B's first column flipped if the optimum had determinant -1)."""
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(n, n, generator=gen, dtype=DTYPE)
    truth, _ = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=DTYPE))
    b = a @ truth + 0.3 * torch.randn(n, n, generator=gen, dtype=DTYPE)
    u, _, vh = torch.linalg.svd(a.T @ b)
    if torch.linalg.det(u @ vh) < 0:
        b[:, 0] = -b[:, 0]
        u, _, vh = torch.linalg.svd(a.T @ b)
    best = u @ vh
    return Problem(
        f"Procrustes, SO({n})",
        fs.SpecialOrthogonal(),
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
    lr: float
    steps: int | None  # to reach the target; None if it did not within the budget
    seconds: float
    final: float
    curve: list[float]
    in_set: bool


def _race(problem: Problem, step, read, max_steps: int, target: float) -> tuple:
    """Call ``step()`` until the objective at ``read()`` is within ``target``: the steps taken
    (None if not within ``max_steps``), the seconds, and the curve of relative errors."""
    curve, reached, start = [], None, time.perf_counter()
    for i in range(max_steps):
        try:
            step()
        except RuntimeError:  # geoopt's eigh raises once its point has left the set
            curve.append(math.inf)
            break
        error = _relative(problem, float(problem.loss(read())))
        curve.append(error if math.isfinite(error) else math.inf)
        if curve[-1] < target:
            reached = i + 1
            break
    return reached, time.perf_counter() - start, curve


_COMPILED: dict[str, tuple] = {}


def run_fs(problem: Problem, lr: float, max_steps: int, target: float) -> Run:
    """fs.optim's Riemannian SGD with momentum 0.9, the step compiled with fullgraph=True.

    The learning rate lives in the state, so one compiled step serves the whole grid.
    """
    if problem.name not in _COMPILED:
        opt = fs.optim.riemannian_sgd(problem.structure, lr=1.0, momentum=0.9)
        compiled = torch.compile(
            lambda x, s: opt.update(x, grad(problem.loss)(x), s), fullgraph=True
        )
        x = _start(problem, 0)
        compiled(x, opt.init(x))  # compile outside the clock
        _COMPILED[problem.name] = (opt, compiled)
    opt, compiled = _COMPILED[problem.name]
    box = [_start(problem, 0)]
    box.append(opt.init(box[0])._replace(lr=torch.tensor(lr, dtype=DTYPE)))

    def step():
        box[0], box[1] = compiled(box[0], box[1])

    reached, seconds, curve = _race(problem, step, lambda: box[0], max_steps, target)
    inside = bool(problem.structure.contains(box[0]))
    return Run("fs.optim riemannian_sgd", lr, reached, seconds, curve[-1], curve, inside)


def run_geoopt(problem: Problem, lr: float, max_steps: int, target: float) -> Run | None:
    """geoopt's RiemannianSGD with momentum 0.9 on a ManifoldParameter, in place."""
    geoopt = geoopt_or_none()
    if geoopt is None:
        return None
    if problem.geoopt_manifold == "stiefel":
        manifold = geoopt.EuclideanStiefel()
    else:
        manifold = geoopt.SymmetricPositiveDefinite()
    point = geoopt.ManifoldParameter(_start(problem, 0).clone(), manifold=manifold)
    opt = geoopt.optim.RiemannianSGD([point], lr=lr, momentum=0.9)

    def step():
        opt.zero_grad()
        problem.loss(point).backward()
        opt.step()

    reached, seconds, curve = _race(problem, step, point.detach, max_steps, target)
    inside = bool(problem.structure.contains(point.detach()))
    return Run("geoopt RiemannianSGD", lr, reached, seconds, curve[-1], curve, inside)


def run_parametrization(problem: Problem, lr: float, max_steps: int, target: float) -> Run:
    """A raw tensor through ``apply``, trained by torch.optim.Adam."""
    s = problem.structure
    raw = s.inverse(_start(problem, 0)).clone().requires_grad_(True)
    opt = torch.optim.Adam([raw], lr=lr)

    def step():
        opt.zero_grad()
        problem.loss(s.apply(raw)).backward()
        opt.step()

    reached, seconds, curve = _race(problem, step, lambda: s.apply(raw.detach()), max_steps, target)
    inside = bool(s.contains(s.apply(raw).detach()))
    route = f"parametrization (fs.{type(s).__name__} + Adam)"
    return Run(route, lr, reached, seconds, curve[-1], curve, inside)


def best_of(runner, problem: Problem, lrs, max_steps: int, target: float) -> Run | None:
    """The run that reaches the target in the fewest steps (else the lowest error) over a
    grid of learning rates: every route gets its own best rate."""
    runs = [runner(problem, lr, max_steps, target) for lr in lrs]
    runs = [r for r in runs if r is not None]
    if not runs:
        return None
    return min(runs, key=lambda r: (r.steps is None, r.steps or 0, r.final))


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
        lrs = (0.1, 0.01)
    else:
        problems = [brockett(), karcher(), procrustes()]
        ensemble_steps = 200
        lrs = LEARNING_RATES
    print(f"steps (and seconds) to reach {args.target:g} relative of the optimum, float64")
    print("| problem | route | best lr | steps | seconds | final relative error | in the set |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    curves = {}
    for problem in problems:
        runs = [
            best_of(runner, problem, lrs, args.max_steps, args.target)
            for runner in (run_fs, run_geoopt, run_parametrization)
        ]
        for r in runs:
            if r is None:
                continue
            steps = r.steps if r.steps is not None else f"> {args.max_steps}"
            print(
                f"| {problem.name} | {r.route} | {r.lr:g} | {steps} | {r.seconds:.2f} | "
                f"{r.final:.2e} | {r.in_set} |"
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
