"""Three classic structured parameters, trained functionally with functional_call + grad.

1. a causal (lower-triangular) mixing matrix, as in an attention-style mask,
2. a diagonal map (per-feature gains),
3. a positive-definite covariance fitted to samples by maximum likelihood.

Each model is an ordinary nn.Module; its raw parameters live in a plain dict, the structure
maps them to the module's weights inside the loss, and torch.func.grad differentiates the whole
thing. The script prints the loss going down and checks the structure at the end.

    python examples/seed.py            # about 10 seconds on 2 cores
    python examples/seed.py --quick    # a few seconds, for CI
"""

from __future__ import annotations

import argparse
import math

import torch
from _shared import adam, gaussian_nll
from torch import nn
from torch.func import functional_call, grad_and_value

import functional_struct as fs


class Gaussian(nn.Module):
    """A zero-mean Gaussian whose forward is the mean negative log-likelihood of samples."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.covariance = nn.Parameter(torch.eye(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return gaussian_nll(self.covariance, x)


def train(name, model, structure, raw, batch, steps, lr, log_every):
    """Fit ``model`` with structured parameters ``structure.apply(raw)``; return the final raw."""

    def loss(r, *inputs):
        out = functional_call(model, structure.apply(r), inputs[:-1])
        return out if inputs[-1] is None else (out - inputs[-1]).square().mean()

    step = grad_and_value(loss)
    state = {}
    print(f"\n{name}")
    for i in range(steps + 1):
        grads, value = step(raw, *batch)
        if i % log_every == 0 or i == steps:
            print(f"  step {i:4d}  loss {value.item():.5f}")
        raw, state = adam(raw, grads, state, lr)
    return raw


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400, help="optimizer steps per model")
    parser.add_argument("--dim", type=int, default=8, help="matrix size")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--quick", action="store_true", help="few steps, for CI")
    args = parser.parse_args(argv)
    steps = 150 if args.quick else args.steps
    log_every = max(1, steps // 5)
    n = args.dim
    gen = torch.Generator().manual_seed(args.seed)
    torch.manual_seed(args.seed)
    checks = []

    # 1. causal mixing: y_t depends on x_1..x_t only, so the weight is lower-triangular.
    causal = nn.Linear(n, n, bias=False)
    structure = fs.structure({"weight": fs.LowerTriangular()})
    true_weight = torch.tril(torch.randn(n, n, generator=gen)) / math.sqrt(n)
    x = torch.randn(256, n, generator=gen)
    y = x @ true_weight.mT + 0.01 * torch.randn(256, n, generator=gen)
    raw = structure.init(dict(causal.named_parameters()), generator=gen)
    raw = train(
        "causal mixing (LowerTriangular)", causal, structure, raw, (x, y), steps, 0.05, log_every
    )
    weight = structure.apply(raw)["weight"]
    checks.append(
        (
            "causal weight is lower-triangular",
            bool(structure.contains({"weight": weight})["weight"]),
        )
    )
    checks.append(("  and has no future leak", bool((weight.triu(1) == 0).all())))

    # 2. per-feature gains: a diagonal linear map with a bias.
    gains = nn.Linear(n, n)
    structure = fs.structure({"weight": fs.Diagonal()})
    true_gain = torch.linspace(-2.0, 2.0, n)
    y = x * true_gain + 0.5
    raw = structure.init(dict(gains.named_parameters()), generator=gen)
    raw = train(
        "per-feature gains (Diagonal)", gains, structure, raw, (x, y), steps, 0.05, log_every
    )
    weight = structure.apply(raw)["weight"]
    checks.append(("gain matrix is diagonal", bool(fs.Diagonal().contains(weight))))
    checks.append(
        ("  gains recovered to 0.05", bool((weight.diagonal() - true_gain).abs().max() < 0.05))
    )

    # 3. a covariance fitted by maximum likelihood: the Cholesky in the loss must never fail.
    gaussian = Gaussian(n)
    structure = fs.structure({"covariance": fs.PositiveDefinite()})
    mix = torch.randn(n, n, generator=gen) / math.sqrt(n)
    true_cov = mix @ mix.mT + 0.1 * torch.eye(n)
    samples = torch.randn(2000, n, generator=gen) @ torch.linalg.cholesky(true_cov).mT
    raw = structure.init(dict(gaussian.named_parameters()), generator=gen)
    raw = train(
        "covariance (PositiveDefinite)",
        gaussian,
        structure,
        raw,
        (samples, None),
        steps,
        0.05,
        log_every,
    )
    cov = structure.apply(raw)["covariance"]
    empirical = samples.mT @ samples / len(samples)
    checks.append(("covariance is positive-definite", bool(fs.PositiveDefinite().contains(cov))))
    err = ((cov - empirical).norm() / empirical.norm()).item()
    checks.append(
        (
            f"  close to the sample covariance (rel. error {err:.3f})",
            err < (0.1 if args.quick else 0.05),
        )
    )

    print()
    for what, ok in checks:
        print(f"  [{'ok' if ok else 'FAILED'}] {what}")
    if not all(ok for _, ok in checks):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
