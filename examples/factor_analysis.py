"""Factor analysis by maximum likelihood with fs, against scikit-learn's ``FactorAnalysis``.

Data come from a known factor model ``x = W z + ε``, ``z ~ N(0, I_k)``,
``ε ~ N(0, diag(ψ))``, so ``Σ = W Wᵀ + diag(ψ)``. fs fits the covariance as the pair of
structures ``(PositiveSemidefinite(rank=k), Chain(Positive(), Diagonal(packed=True)))`` (the
raw is the factor ``F`` and the noise's softplus raw: ``p k + p`` numbers) by L-BFGS on the
mean Gaussian log-likelihood, which ``fs.linalg.inv_quad_logdet`` evaluates from the factors
(Woodbury and the determinant lemma, ``O(N p k)``: the p x p matrix is never formed).
scikit-learn's ``FactorAnalysis`` (SVD-based EM) fits the same model on the same data.

Reported: the mean log-likelihood of each fit on the training data (they must agree to
1e-3 relative), the wall time, and the recovered noise variances against the truth. Then a
size where the dense path (form ``Σ``, Cholesky, per evaluation) is impractical.

Run:
    python examples/factor_analysis.py           # p = 50 and p = 2048
    python examples/factor_analysis.py --quick   # small, for CI
"""

from __future__ import annotations

import argparse
import math
import time

import torch

import functional_struct as fs
from functional_struct import linalg

COVARIANCE_OF = {}


def covariance(k: int) -> tuple:
    """The structure pair for ``W Wᵀ + diag(ψ)``, rank ``k``."""
    return (fs.PositiveSemidefinite(rank=k), fs.Chain(fs.Positive(), fs.Diagonal(packed=True)))


def factor_model(p: int, k: int, n: int, seed: int = 0):
    """Samples ``(n, p)`` of a known factor model, with its loadings and noise variances."""
    gen = torch.Generator().manual_seed(seed)
    loadings = torch.randn(p, k, generator=gen, dtype=torch.float64)
    noise = 0.2 + torch.rand(p, generator=gen, dtype=torch.float64)  # ψ in [0.2, 1.2]
    z = torch.randn(n, k, generator=gen, dtype=torch.float64)
    eps = torch.randn(n, p, generator=gen, dtype=torch.float64) * noise.sqrt()
    return z @ loadings.T + eps, loadings, noise


def mean_log_likelihood(structure, raw, x: torch.Tensor) -> torch.Tensor:
    """The mean Gaussian log-likelihood of the rows of (centered) ``x``, from the raw."""
    quad, logdet = linalg.inv_quad_logdet(structure, raw, x)
    return -0.5 * (quad.mean(-1) + logdet + x.shape[-1] * math.log(2 * math.pi))


def fit_fs(x: torch.Tensor, k: int, max_iter: int = 500):
    """L-BFGS on the raw ``(F, d)``, started from the top-k principal components."""
    structure = covariance(k)
    x = x - x.mean(0)
    n, p = x.shape
    u, s, vh = torch.linalg.svd(x / math.sqrt(n), full_matrices=False)
    start = (vh[:k].T * s[:k], torch.zeros(p, dtype=x.dtype))
    raw = [t.clone().requires_grad_(True) for t in start]
    opt = torch.optim.LBFGS(
        raw,
        max_iter=max_iter,
        tolerance_grad=1e-10,
        tolerance_change=1e-14,
        history_size=50,
        line_search_fn="strong_wolfe",
    )

    def closure():
        opt.zero_grad()
        loss = -mean_log_likelihood(structure, tuple(raw), x)
        loss.backward()
        return loss

    begin = time.perf_counter()
    opt.step(closure)
    seconds = time.perf_counter() - begin
    raw = tuple(t.detach() for t in raw)
    noise = structure[1].apply(raw[1]).diagonal()
    return mean_log_likelihood(structure, raw, x).item(), noise, seconds


def fit_sklearn(x: torch.Tensor, k: int):
    try:
        from sklearn.decomposition import FactorAnalysis
    except ImportError:
        return None
    begin = time.perf_counter()
    fa = FactorAnalysis(n_components=k, tol=1e-8, max_iter=5000, random_state=0)
    fa.fit(x.numpy())
    seconds = time.perf_counter() - begin
    return float(fa.score(x.numpy())), torch.from_numpy(fa.noise_variance_), seconds


def dense_seconds(structure, raw, x: torch.Tensor) -> float:
    """One log-likelihood gradient the dense way: form Σ, Cholesky, triangular solves."""
    raw = tuple(t.clone().requires_grad_(True) for t in raw)
    begin = time.perf_counter()
    sigma = sum(s.apply(t) for s, t in zip(structure, raw, strict=True))
    factor = torch.linalg.cholesky(sigma)
    white = torch.linalg.solve_triangular(factor, x.mT, upper=False)
    loss = white.square().sum(0).mean() + 2 * factor.diagonal().log().sum()
    loss.backward()
    return time.perf_counter() - begin


def structured_seconds(structure, raw, x: torch.Tensor) -> float:
    raw = tuple(t.clone().requires_grad_(True) for t in raw)
    begin = time.perf_counter()
    (-mean_log_likelihood(structure, raw, x)).backward()
    return time.perf_counter() - begin


def compare(p: int, k: int, n: int) -> None:
    x, _, noise = factor_model(p, k, n)
    ll, fitted_noise, seconds = fit_fs(x, k)
    line = f"p = {p}, k = {k}, N = {n}: fs (L-BFGS) mean log-likelihood {ll:.6f} in {seconds:.2f} s"
    reference = fit_sklearn(x, k)
    if reference is not None:
        sk_ll, sk_noise, sk_seconds = reference
        gap = abs(ll - sk_ll) / abs(sk_ll)
        line += (
            f"; scikit-learn {sk_ll:.6f} in {sk_seconds:.2f} s (relative gap {gap:.1e}); "
            f"noise variances: fs vs sklearn {float((fitted_noise - sk_noise).abs().max()):.1e}"
        )
    error = ((fitted_noise - noise).abs() / noise).median().item()
    print(line + f"; fs noise variances vs truth: median relative error {error:.3f}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (CI)")
    args = parser.parse_args(argv)
    torch.set_default_dtype(torch.float64)
    if args.quick:
        compare(20, 3, 500)
        big_p, big_k, big_n = 256, 4, 300
    else:
        compare(50, 5, 2000)
        big_p, big_k, big_n = 2048, 10, 1000
    structure = covariance(big_k)
    x, loadings, noise = factor_model(big_p, big_k, big_n, seed=1)
    raw = (loadings, torch.log(torch.expm1(noise)))
    fast = min(structured_seconds(structure, raw, x) for _ in range(3))
    slow = min(dense_seconds(structure, raw, x) for _ in range(2))
    print(
        f"one log-likelihood gradient at p = {big_p}, k = {big_k}, N = {big_n}: fs.linalg "
        f"{fast * 1e3:.1f} ms, dense {slow * 1e3:.1f} ms ({slow / fast:.0f}x; the dense path "
        f"also holds p² = {big_p**2 * 8 / 2**20:.0f} MiB per matrix)"
    )
    compare(big_p, big_k, big_n * 4) if not args.quick else None


if __name__ == "__main__":
    main()
