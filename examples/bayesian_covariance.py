"""Posterior sampling in raw space: HMC chains as an ensemble, with exact log-det Jacobians.

Two problems whose answers are known exactly, each sampled by Hamiltonian Monte Carlo on the
unconstrained raw of a packed structure, all chains at once under ``vmap``:

1. **Covariance, inverse-Wishart prior.** Data ``x_1..m ~ N(0, Σ)`` and ``Σ ~ IW(Ψ, ν)``: the
   posterior is ``IW(Ψ + S, ν + m)`` with mean ``(Ψ + S) / (ν + m - n - 1)``. ``Σ`` is
   ``fs.PositiveDefinite(packed=True)`` of a raw vector of ``n(n+1)/2`` entries; the density
   on the raw is the posterior density of ``Σ`` times ``exp(log_det)`` from
   ``forward_and_log_det``.
2. **Correlation, LKJ prior.** ``C ~ LKJ(η)`` has ``p(C) ∝ det(C)^(η-1)`` and every
   off-diagonal entry satisfies ``(C_ij + 1) / 2 ~ Beta(b, b)``, ``b = η - 1 + n/2``, so
   ``E[C_ij²] = 1 / (2η + n - 1)``; sampled on ``fs.Correlation(packed=True)`` and compared
   with that law. ``torch.distributions.LKJCholesky``'s draws are printed beside it: in torch
   2.13 they match the law for ``C_10`` only (E[C_20²] = 0.2145 where the law, which treats
   every entry alike, gives 1/6 at n = 3, η = 2; 400,000 draws), so the law is the reference.

Each problem runs twice: with the log-det term, and without it (the mistake the capability
exists to prevent). Agreement is measured in Monte-Carlo standard errors, from the spread of
the per-chain means.

Run:
    python examples/bayesian_covariance.py           # 64 chains, 800 draws each
    python examples/bayesian_covariance.py --quick   # 16 chains, 150 draws, for CI
"""

from __future__ import annotations

import argparse
import math
import time

import torch
from torch.func import grad, vmap

import functional_struct as fs


def hmc(log_density, init, steps, warmup, leapfrog=10, step_size=0.1, generator=None):
    """Hamiltonian Monte Carlo on a batch of chains (dim 0), all moved in one ``vmap``.

    Each chain adapts its own step size during warmup (towards an acceptance rate of 0.8);
    returns the draws after warmup, ``(steps, chains, ...)``, and the mean acceptance rate.
    """
    value_and_grad = vmap(lambda x: (log_density(x), grad(log_density)(x)))
    x = init
    chains = x.shape[0]
    eps = torch.full((chains,), step_size, dtype=x.dtype)
    logp, g = value_and_grad(x)
    draws, accepted = [], []
    for t in range(warmup + steps):
        e = eps[:, None]
        p = torch.randn(x.shape, generator=generator, dtype=x.dtype)
        energy = logp - 0.5 * p.square().sum(-1)
        q, g_q = x, g
        p_q = p + 0.5 * e * g_q
        for i in range(leapfrog):
            q = q + e * p_q
            logp_q, g_q = value_and_grad(q)
            if i < leapfrog - 1:
                p_q = p_q + e * g_q
        p_q = p_q + 0.5 * e * g_q
        proposal = logp_q - 0.5 * p_q.square().sum(-1)
        log_ratio = torch.nan_to_num(proposal - energy, nan=-math.inf)
        accept = torch.rand(chains, generator=generator, dtype=x.dtype).log() < log_ratio
        x = torch.where(accept[:, None], q, x)
        logp = torch.where(accept, logp_q, logp)
        g = torch.where(accept[:, None], g_q, g)
        if t < warmup:
            rate = log_ratio.clamp(max=0).exp()
            eps = eps * torch.exp(0.5 * (rate - 0.8) / math.sqrt(t + 1))
        else:
            draws.append(x)
            accepted.append(accept.to(x.dtype).mean())
    return torch.stack(draws), float(torch.stack(accepted).mean())


def z_scores(samples, truth):
    """|mean - truth| in Monte-Carlo standard errors, from the spread of per-chain means."""
    chain_means = samples.mean(0)
    mean = chain_means.mean(0)
    standard_error = chain_means.std(0) / math.sqrt(chain_means.shape[0])
    return mean, (mean - truth).abs() / standard_error


def covariance_problem(chains, steps, warmup, use_log_det, seed=0):
    """HMC on the IW posterior of a 3 x 3 covariance; returns the z-scores of its mean."""
    n, m, nu = 3, 20, 7.0
    gen = torch.Generator().manual_seed(seed)
    dtype = torch.float64
    truth_cov = torch.tensor([[2.0, 0.6, 0.0], [0.6, 1.0, -0.3], [0.0, -0.3, 0.5]], dtype=dtype)
    data = torch.randn(m, n, generator=gen, dtype=dtype) @ torch.linalg.cholesky(truth_cov).T
    psi = (nu - n - 1) * torch.eye(n, dtype=dtype)  # prior mean I
    scatter = psi + data.T @ data
    scatter_root = torch.linalg.cholesky(scatter)
    posterior_mean = scatter / (nu + m - n - 1)
    power = (nu + m + n + 1) / 2
    structure = fs.PositiveDefinite(packed=True)

    def log_density(raw):
        sigma, log_det = structure.forward_and_log_det(raw)
        factor = torch.linalg.cholesky(sigma)
        logdet_sigma = 2 * factor.diagonal().log().sum()
        whitened = torch.linalg.solve_triangular(factor, scatter_root, upper=False)
        value = -power * logdet_sigma - 0.5 * whitened.square().sum()
        return value + log_det if use_log_det else value

    init = structure.inverse(torch.eye(n, dtype=dtype).expand(chains, n, n))
    init = init + 0.1 * torch.randn(init.shape, generator=gen, dtype=dtype)
    raws, rate = hmc(log_density, init, steps, warmup, generator=gen)
    samples = structure.apply(raws)
    mean, z = z_scores(samples, posterior_mean)
    return {"mean": mean, "truth": posterior_mean, "z": z, "acceptance": rate}


def lkj_problem(chains, steps, warmup, use_log_det, seed=1, n=3, eta=2.0):
    """HMC on an LKJ(eta) prior over correlations; returns the z-scores of E[C_ij²]."""
    gen = torch.Generator().manual_seed(seed)
    dtype = torch.float64
    structure = fs.Correlation(packed=True)

    def log_density(raw):
        corr, log_det = structure.forward_and_log_det(raw)
        value = (eta - 1) * 2 * torch.linalg.cholesky(corr).diagonal().log().sum()
        return value + log_det if use_log_det else value

    init = 0.3 * torch.randn(chains, n * (n - 1) // 2, generator=gen, dtype=dtype)
    raws, rate = hmc(log_density, init, steps, warmup, generator=gen)
    below = torch.tril_indices(n, n, -1)
    squares = structure.apply(raws)[..., below[0], below[1]].square()
    truth = torch.full((squares.shape[-1],), 1 / (2 * eta + n - 1), dtype=dtype)
    mean, z = z_scores(squares, truth)
    draws = torch.distributions.LKJCholesky(n, eta).sample((100_000,)).to(dtype)
    reference = (draws @ draws.mT)[..., below[0], below[1]].square().mean(0)
    return {"mean": mean, "truth": truth, "torch": reference, "z": z, "acceptance": rate}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chains", type=int, default=64)
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--quick", action="store_true", help="16 chains, 150 draws (CI)")
    args = parser.parse_args(argv)
    if args.quick:
        args.chains, args.steps, args.warmup = 16, 150, 100
    print(f"HMC, {args.chains} chains x {args.steps} draws ({args.warmup} warmup), float64")
    for name, problem in (("covariance, IW prior", covariance_problem), ("LKJ(2)", lkj_problem)):
        for use_log_det in (True, False):
            start = time.perf_counter()
            result = problem(args.chains, args.steps, args.warmup, use_log_det)
            elapsed = time.perf_counter() - start
            label = "with log-det   " if use_log_det else "WITHOUT log-det"
            print(
                f"{name:20s} {label}: max |error| = "
                f"{float((result['mean'] - result['truth']).abs().max()):.4f}, "
                f"max z = {float(result['z'].max()):6.1f} standard errors, "
                f"acceptance {result['acceptance']:.2f}, {elapsed:.1f} s"
            )
            if use_log_det and "torch" in result:
                print(
                    f"{'':20s} E[C_ij²] for (1,0), (2,0), (2,1): HMC "
                    f"{[round(v, 4) for v in result['mean'].tolist()]}, LKJ law "
                    f"{float(result['truth'][0]):.4f} each, torch.distributions.LKJCholesky "
                    f"draws {[round(v, 4) for v in result['torch'].tolist()]}"
                )
    print("With the log-det, every estimate is within a few standard errors of the exact")
    print("answer; without it, the sampler targets a different distribution.")


if __name__ == "__main__":
    main()
