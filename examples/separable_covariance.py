"""A separable (Kronecker) covariance of fields on a 32 x 32 grid, fitted with fs.linalg.

Fields on a grid whose rows and columns are correlated independently have the covariance
``Σ = A ⊗ B`` (``A`` over rows, ``B`` over columns): 1024 x 1024 here, from two 32 x 32
positive-definite factors. ``fs.Kronecker(PositiveDefinite(), PositiveDefinite(), sizes=(32,
32))`` maps the two factors' raws to ``Σ``, and ``fs.linalg.inv_quad_logdet`` takes the
Gaussian log-likelihood through the factors: two 32 x 32 Cholesky factorizations instead of
one 1024 x 1024, and ``log det Σ = 32 log det A + 32 log det B``. The fit is compared with the
truth, and one likelihood gradient with the dense path's.

Run:
    python examples/separable_covariance.py            # a 32 x 32 grid
    python examples/separable_covariance.py --quick    # an 8 x 8 grid, for CI
"""

from __future__ import annotations

import argparse
import math
import time

import torch
from _shared import adam
from torch.func import grad

import functional_struct as fs
from functional_struct import linalg


def nll(structure, raw, x):
    """Mean negative log-likelihood of the rows of ``x`` under N(0, Σ), from the raw."""
    quad, logdet = linalg.inv_quad_logdet(structure, raw, x)
    return 0.5 * (quad.mean(-1) + logdet + x.shape[-1] * math.log(2 * math.pi))


def smooth(side: int, length: float) -> torch.Tensor:
    """A squared-exponential correlation over ``side`` points, plus a little noise."""
    grid = torch.arange(side, dtype=torch.float64)
    return torch.exp(-((grid[:, None] - grid) ** 2) / (2 * length**2)) + 0.05 * torch.eye(
        side, dtype=torch.float64
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="an 8 x 8 grid, for CI")
    parser.add_argument("--side", type=int, default=32)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args(argv)
    side = 8 if args.quick else args.side
    steps = 100 if args.quick else args.steps
    n = side * side
    structure = fs.Kronecker(fs.PositiveDefinite(), fs.PositiveDefinite(), sizes=(side, side))

    # The truth: smooth over rows (length 4), rougher over columns (length 1.5).
    truth = (smooth(side, 4.0), smooth(side, 1.5))
    true_raw = tuple(fs.PositiveDefinite().raw_from(t) for t in truth)
    gen = torch.Generator().manual_seed(0)
    draw = linalg.root(structure, true_raw)
    train = (draw @ torch.randn(n, args.samples, generator=gen, dtype=torch.float64)).mT
    test = (draw @ torch.randn(n, 1000, generator=gen, dtype=torch.float64)).mT

    raw = structure.init((n, n), generator=gen, dtype=torch.float64)
    step = grad(nll, argnums=1)
    print(f"{side} x {side} grid (n = {n}), {args.samples} samples, {steps} steps")
    print(f"rule: {linalg.method(structure, 'inv_quad_logdet', (n, n))}")
    state: dict = {}
    start = time.perf_counter()
    for _ in range(steps):
        grads = step(structure, raw, train)
        new, state = adam(dict(enumerate(raw)), dict(enumerate(grads)), state, lr=0.05)
        raw = (new[0], new[1])
    seconds = time.perf_counter() - start
    fitted, best = nll(structure, raw, test).item() / n, nll(structure, true_raw, test).item() / n
    print(
        f"test NLL per dim: fitted {fitted:.4f}, truth {best:.4f}; "
        f"{seconds:.2f} s for {steps} steps ({seconds / steps * 1e3:.1f} ms each)"
    )
    assert fitted < best + 0.05, "the fit should approach the truth"

    def dense_nll(raw, x):
        factor = torch.linalg.cholesky(structure.apply(raw))
        white = torch.linalg.solve_triangular(factor, x.mT, upper=False)
        logdet = 2 * factor.diagonal(dim1=-2, dim2=-1).log().sum(-1)
        return 0.5 * (white.square().sum(-2).mean(-1) + logdet + n * math.log(2 * math.pi))

    timings = {}
    for name, fn in (
        ("fs.linalg", lambda: step(structure, raw, train)),
        ("dense", lambda: grad(dense_nll)(raw, train)),
    ):
        fn()
        start = time.perf_counter()
        fn()
        timings[name] = time.perf_counter() - start
    print(
        f"one gradient: fs.linalg {timings['fs.linalg'] * 1e3:.1f} ms, dense "
        f"{timings['dense'] * 1e3:.1f} ms ({timings['dense'] / timings['fs.linalg']:.1f}x)"
    )


if __name__ == "__main__":
    main()
