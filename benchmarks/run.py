"""Benchmarks against the alternatives, side by side in one process, as ratios.

    OMP_NUM_THREADS=2 python benchmarks/run.py [--quick] [--json FILE]

Every comparison times its variants in interleaved rounds after a warm-up and reports medians,
and ratios as the median of per-round ratios with their interquartile range, so that a noisy
shared machine moves all variants alike and the spread shows how far to trust a ratio. The
thread count comes from the environment (OMP_NUM_THREADS) and is printed; the script never calls
torch.set_num_threads (an explicit call makes batched solves hang for n >= 160 in torch 2.13:
docs/architecture.md).
Loop baselines iterate with unbind, never x[i]. geotorch, linear_operator and CoLA rows need the
`bench` extra and say so when it is absent.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics

import complex_structures
import distributed
import log_det
import manifold_optim
import structured_linalg
import torch
import torch.nn.functional as F
from _timing import ROWS, report, timed
from torch import nn
from torch.func import functional_call, grad, vmap
from torch.nn.utils import parametrizations, parametrize

import functional_struct as fs

try:
    import geotorch
except ImportError:  # the optional `bench` extra
    geotorch = None


# ------------------------------------------------------------------ hand-written maps (limits)
def hand_upper(raw):
    return torch.triu(raw)


def hand_pd(raw):
    factor = torch.tril(raw, -1) + torch.diag_embed(F.softplus(raw.diagonal(dim1=-2, dim2=-1)))
    n = raw.shape[-1]
    shift = 1e-6 + 1e-5 * factor.square().sum((-2, -1)) / n
    return factor @ factor.mT + shift[..., None, None] * torch.eye(n, dtype=raw.dtype)


def hand_cayley(raw):
    lower = torch.tril(raw, -1)
    eye = torch.eye(raw.shape[-1], dtype=raw.dtype)
    return 2 * torch.linalg.inv(eye - lower + lower.mT) - eye


class Matrix(nn.Module):
    def __init__(self, n: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.eye(n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight.mT


STRUCTURES = {
    "orthogonal": (fs.Orthogonal(), hand_cayley, "orthogonal"),
    "positive-definite": (fs.PositiveDefinite(), hand_pd, "positive_definite"),
    "upper-triangular": (fs.UpperTriangular(), hand_upper, None),
}


def ensemble_step(e: int, n: int, rounds: int, compile_too: bool) -> None:
    """Forward + backward + SGD update for an ensemble of E models, four (or five) ways."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(e, 64, n, generator=gen)
    y = torch.randn(e, 64, n, generator=gen)
    for name, (structure, hand, geo) in STRUCTURES.items():
        tree = fs.structure({"weight": structure})
        model = Matrix(n)
        raw0 = tree.init({"weight": torch.empty(n, n)}, batch_shape=(e,), generator=gen)

        def loss_fs(r, xb, yb, tree=tree, model=model):
            return (functional_call(model, tree.apply(r), (xb,)) - yb).square().mean()

        def loss_hand(r, xb, yb, hand=hand, model=model):  # the same call, the map inlined
            return (
                (functional_call(model, {"weight": hand(r["weight"])}, (xb,)) - yb).square().mean()
            )

        step_fs = vmap(grad(loss_fs))
        step_hand = vmap(grad(loss_hand))
        state = {"fs": raw0, "hand": {"weight": raw0["weight"].clone()}}

        def run_fs(step_fs=step_fs, state=state):
            g = step_fs(state["fs"], x, y)
            state["fs"] = {k: state["fs"][k] - 0.01 * g[k] for k in g}

        def run_hand(step_hand=step_hand, state=state):
            g = step_hand(state["hand"], x, y)
            state["hand"] = {k: state["hand"][k] - 0.01 * g[k] for k in g}

        def modules(kind, structure=structure, geo=geo, raw0=raw0):
            out = []
            for raw_e in raw0["weight"].unbind(0):
                m = Matrix(n)
                if kind == "parametrize":
                    parametrize.register_parametrization(
                        m, "weight", fs.as_parametrization(structure)
                    )
                    with torch.no_grad():
                        m.parametrizations.weight.original.copy_(raw_e)
                else:
                    getattr(geotorch, geo)(m, "weight")
                out.append((m, torch.optim.SGD(m.parameters(), lr=0.01)))
            return out

        def loop(ms):
            def run():
                for (m, opt), xb, yb in zip(ms, x.unbind(0), y.unbind(0), strict=True):
                    opt.zero_grad()
                    (m(xb) - yb).square().mean().backward()
                    opt.step()

            return run

        variants = {
            "fs vmap(grad)": run_fs,
            "hand-written vmap(grad)": run_hand,
            "parametrize loop": loop(modules("parametrize")),
        }
        notes = ""
        if geo and geotorch is not None:
            variants["geotorch loop"] = loop(modules("geotorch"))
        elif geo:
            notes = "geotorch not installed (pip install '.[bench]')"
        else:
            notes = "geotorch has no triangular constraint"
        if compile_too:
            compiled = torch.compile(step_fs, fullgraph=True)

            def run_compiled(compiled=compiled, state=state):
                g = compiled(state["fs"], x, y)
                state["fs"] = {k: state["fs"][k] - 0.01 * g[k] for k in g}

            variants["fs vmap(grad), compiled"] = run_compiled
        times = timed(variants, rounds)
        report("ensemble step", f"{name}, E={e}, n={n}", times, "fs vmap(grad)", notes)


METHODS = ("cayley", "expm", "householder")
PD = ("cholesky", "expm")


def per_structure(sizes: list[int], rounds: int) -> None:
    """One matrix: our maps against the primitive, the seed-style mask, and the alternatives."""
    for n in sizes:
        raw = torch.randn(n, n, requires_grad=True)
        upper = fs.UpperTriangular()

        def seed_style(raw=raw, n=n):  # the mask rebuilt on every call: the usual hand-written form
            mask = torch.ones(n, n, dtype=torch.bool).triu()
            return torch.where(mask, raw, torch.zeros_like(raw))

        for mode in ("forward", "forward+backward"):

            def wrap(f, mode=mode):
                if mode == "forward":
                    return lambda: f()
                return lambda: f().sum().backward()

            times = timed(
                {
                    "fs UpperTriangular": wrap(lambda raw=raw, upper=upper: upper.apply(raw)),
                    "torch.triu": wrap(lambda raw=raw: torch.triu(raw)),
                    "seed-style where(mask)": wrap(seed_style),
                },
                rounds,
            )
            report("mask vs primitive", f"n={n}, {mode}", times, "torch.triu")

    for n in [s for s in sizes if s <= 256]:
        raw = torch.randn(n, n, requires_grad=True)
        maps = {f"fs Orthogonal ({m})": fs.Orthogonal(method=m) for m in METHODS}
        maps.update({f"fs PositiveDefinite ({m})": fs.PositiveDefinite(method=m) for m in PD})
        variants = {
            name: (lambda raw=raw, s=s: s.apply(raw).sum().backward()) for name, s in maps.items()
        }
        for kind in ("matrix_exp", "cayley", "householder"):
            layer = nn.Linear(n, n, bias=False)
            parametrizations.orthogonal(layer, orthogonal_map=kind)
            variants[f"torch orthogonal ({kind})"] = lambda layer=layer: (
                layer.weight.sum().backward()
            )
        notes = ""
        if geotorch is not None:
            for name, constraint in (
                ("geotorch orthogonal", geotorch.orthogonal),
                ("geotorch positive_definite", geotorch.positive_definite),
            ):
                layer = nn.Linear(n, n, bias=False)
                constraint(layer, "weight")
                variants[name] = lambda layer=layer: layer.weight.sum().backward()
        else:
            notes = "geotorch not installed"
        report(
            "manifold map, forward+backward",
            f"n={n}",
            timed(variants, rounds),
            "fs Orthogonal (cayley)",
            notes,
        )


def batched_exponential(sizes: list[int], rounds: int, e: int = 64) -> None:
    """Item 6: the library's batched Padé exponential vs torch.linalg.matrix_exp under vmap."""
    from functional_struct._expm import matrix_exp

    for n in sizes:
        raw = 0.3 * torch.randn(e, n, n, generator=torch.Generator().manual_seed(0))
        skew = raw - raw.mT
        reference = torch.linalg.matrix_exp(skew.double())
        error = {
            "fs matrix_exp": (matrix_exp(skew).double() - reference).abs().max().item(),
            "torch.linalg.matrix_exp": (
                (torch.linalg.matrix_exp(skew).double() - reference).abs().max().item()
            ),
        }
        for mode in ("forward", "forward+backward"):

            def step(fn, mode=mode):
                def loss(r):
                    q = fn(r - r.mT)
                    return q.square().sum() + q[0, 1]

                if mode == "forward":
                    return vmap(lambda r: fn(r - r.mT))
                return vmap(grad(loss))

            fs_step, torch_step = step(matrix_exp), step(torch.linalg.matrix_exp)
            times = timed(
                {
                    "fs matrix_exp": lambda f=fs_step, raw=raw: f(raw),
                    "torch.linalg.matrix_exp": lambda f=torch_step, raw=raw: f(raw),
                },
                rounds,
            )
            report(
                "batched exponential (vmap)",
                f"E={e}, n={n}, {mode}",
                times,
                "torch.linalg.matrix_exp",
                "max error vs float64: " + ", ".join(f"{k} {v:.1e}" for k, v in error.items()),
            )


def tree_overhead(rounds: int) -> None:
    raw = {f"layer{i}.weight": torch.randn(4, 4) for i in range(100)}
    tree = fs.structure({"*.weight": fs.UpperTriangular()})
    leaf = fs.UpperTriangular()
    times = timed(
        {
            "fs.structure apply, 100 leaves": lambda: tree.apply(raw),
            "leaf maps called directly": lambda: {k: leaf.apply(v) for k, v in raw.items()},
            "torch.triu directly": lambda: {k: torch.triu(v) for k, v in raw.items()},
        },
        rounds * 5,
    )
    median = {name: statistics.median(t) for name, t in times.items()}
    per_leaf = (
        median["fs.structure apply, 100 leaves"] - median["leaf maps called directly"]
    ) / 100
    report(
        "tree overhead",
        "100 leaves of 4x4",
        times,
        "leaf maps called directly",
        f"{per_leaf * 1e6:.1f} us per leaf over the leaf maps",
    )


def scaling(ensembles: list[int], sizes: list[int], rounds: int) -> None:
    for name in ("upper-triangular", "positive-definite", "orthogonal"):
        structure = STRUCTURES[name][0]
        for e in ensembles:
            for n in sizes:
                gen = torch.Generator().manual_seed(0)
                raw = structure.init((e, n, n), generator=gen)
                x = torch.randn(e, 16, n, generator=gen)

                def loss(r, xb, structure=structure):
                    return (xb @ structure.apply(r).mT).square().mean()

                step = vmap(grad(loss))
                samples = timed({"step": lambda step=step, raw=raw, x=x: step(raw, x)}, rounds)
                t = statistics.median(samples["step"])
                ROWS.append(
                    {
                        "section": "scaling",
                        "case": f"{name}, E={e}, n={n}",
                        "variant": "fs vmap(grad)",
                        "median_s": t,
                        "per_model_s": t / e,
                    }
                )
                print(
                    f"| scaling | {name}, E={e}, n={n} | fs vmap(grad) | {t * 1e3:9.3f} ms | "
                    f"{t / e * 1e6:8.1f} us per model | |"
                )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer sizes and rounds")
    parser.add_argument("--json", metavar="FILE", help="also write every row as JSON")
    args = parser.parse_args(argv)
    rounds = 5 if args.quick else 15
    print(
        f"# functional_struct benchmarks, {datetime.date.today()}, {platform.machine()}, "
        f"{os.cpu_count()} cores, torch {torch.__version__}, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')} "
        f"(torch uses {torch.get_num_threads()} threads), "
        f"geotorch {'present' if geotorch else 'absent'}\n"
    )
    print("| section | case | variant | median | ratio | notes |")
    print("|---|---|---|---|---|---|")
    ensemble_step(64, 32, rounds, compile_too=not args.quick)
    per_structure([64, 256] if args.quick else [64, 256, 1024], rounds)
    batched_exponential([16] if args.quick else [16, 32, 64], rounds)
    tree_overhead(rounds)
    scaling(
        [1, 8, 64] if args.quick else [1, 8, 64, 512],
        [8, 32] if args.quick else [8, 32, 128],
        max(3, rounds // 3),
    )
    structured_linalg.run(args.quick, rounds)
    log_det.run(args.quick, rounds)
    manifold_optim.run(args.quick, rounds)
    distributed.run(args.quick, rounds)
    complex_structures.run(args.quick, rounds)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"threads": torch.get_num_threads(), "rows": ROWS}, f, indent=1)


if __name__ == "__main__":
    main()
