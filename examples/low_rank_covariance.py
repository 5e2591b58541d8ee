"""Low-rank-plus-diagonal covariances for a whole ensemble at once (factor analysis).

Each of E models fits a covariance ``Σ = F Fᵀ + D`` (``F`` an n x r factor, ``D`` a positive
diagonal) to its own data set by maximum likelihood, all E in one ``vmap(grad)`` step. ``Σ`` is
``fs.PositiveSemidefinite(rank=r).apply(F) + fs.Chain(fs.Positive(), fs.Diagonal()).apply(d)``
from the raw tuple ``(F, d)``, positive-definite by construction. It is not an ``fs.Sum``:
deciding whether a given matrix is low-rank plus diagonal is factor analysis itself, with no
reliable split, so ``Sum`` refuses these parts (its ``contains``/``inverse`` would be wrong),
and training needs only ``apply``. (``Diagonal()`` keeps a full n x n raw of which it reads
the diagonal; a packed diagonal would make the count n r + n.) The data come
from a true low-rank-plus-diagonal covariance, so the fit can be compared with the truth, and
with a full ``PositiveDefinite`` fit (which overfits when samples are few).

Run:
    python examples/low_rank_covariance.py            # E = 16, n = 32, r = 3
    python examples/low_rank_covariance.py --quick    # a few seconds, for CI
"""

from __future__ import annotations

import argparse
import time

import optree
import torch
from _shared import adam, gaussian_nll
from torch.func import grad, vmap

import functional_struct as fs


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few steps, for CI")
    parser.add_argument("--ensemble", type=int, default=16)
    parser.add_argument("--n", type=int, default=32)
    parser.add_argument("--rank", type=int, default=3)
    parser.add_argument("--samples", type=int, default=48)
    parser.add_argument("--steps", type=int, default=600)
    args = parser.parse_args(argv)
    e, n, r = args.ensemble, args.n, args.rank
    steps = 150 if args.quick else args.steps
    gen = torch.Generator().manual_seed(0)

    # The truth: Σ = W Wᵀ + diag(d), one per model; samples drawn from it, and a held-out set.
    w = torch.randn(e, n, r, generator=gen)
    d = 0.1 + torch.rand(e, n, generator=gen)
    truth = w @ w.mT + torch.diag_embed(d)
    factor = torch.linalg.cholesky(truth)
    train = (factor @ torch.randn(e, n, args.samples, generator=gen)).mT
    test = (factor @ torch.randn(e, n, 1000, generator=gen)).mT

    models = {
        "low rank + diagonal": LowRankPlusDiagonal(r),
        "full PositiveDefinite": fs.PositiveDefinite(),
    }
    print(f"E = {e} models, n = {n}, rank {r}, {args.samples} training samples each, {steps} steps")
    print(f"true test NLL: {gaussian_nll(truth, test).mean().item():.4f}")
    for name, structure in models.items():
        raw = structure.init((e, n, n), generator=torch.Generator().manual_seed(1))
        params = {"cov": raw}

        def loss(p, x, structure=structure):
            return gaussian_nll(structure.apply(p["cov"]), x)

        step = vmap(grad(loss))
        state: dict = {}
        start = time.perf_counter()
        for _ in range(steps):
            # adam is elementwise over dicts of tensors; flatten the tuple raw into the dict.
            flat, spec = _flatten(params["cov"])
            grads, _ = _flatten(step(params, train)["cov"])
            new, state = adam(dict(enumerate(flat)), dict(enumerate(grads)), state, lr=0.02)
            params = {"cov": _unflatten(spec, [new[i] for i in range(len(flat))])}
        seconds = time.perf_counter() - start
        covariance = structure.apply(params["cov"])
        assert (torch.linalg.cholesky_ex(covariance).info == 0).all(), name
        numbers = sum(leaf[0].numel() for leaf in _flatten(params["cov"])[0])
        print(
            f"{name:>22}: test NLL {gaussian_nll(covariance, test).mean().item():.4f}, "
            f"train NLL {gaussian_nll(covariance, train).mean().item():.4f}, "
            f"raw numbers per model {numbers}, {seconds:.2f} s for {steps} vmapped steps"
        )


class LowRankPlusDiagonal:
    """``F Fᵀ + D`` from the raw ``(F, d)``: the two structures' images added, for training.

    Only ``init`` and ``apply``: the module docstring says why this is not an ``fs.Sum``.
    """

    def __init__(self, rank: int) -> None:
        self.factor = fs.PositiveSemidefinite(rank=rank)
        self.diagonal = fs.Chain(fs.Positive(), fs.Diagonal())

    def init(self, shape, *, generator=None):
        return (
            self.factor.init(shape, generator=generator),
            self.diagonal.init(shape, generator=generator),
        )

    def apply(self, raw):
        return self.factor.apply(raw[0]) + self.diagonal.apply(raw[1])


def _flatten(tree):
    return optree.tree_flatten(tree, namespace="torch")


def _unflatten(spec, leaves):
    return optree.tree_unflatten(spec, leaves)


if __name__ == "__main__":
    main()
