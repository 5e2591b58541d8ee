"""Helpers the examples share (not an example itself: .ci/run skips files starting with _)."""

from __future__ import annotations

import math

import torch


def adam(params, grads, state, lr, betas=(0.9, 0.999), eps=1e-8):
    """One functional Adam step over dicts of tensors: returns the new params and state.

    Pure: nothing is modified in place, so it works on whole vmapped ensembles at once (every
    tensor carries the ensemble dim, and Adam is elementwise).
    """
    step = state.get("step", 0) + 1
    m = {
        k: betas[0] * state["m"][k] + (1 - betas[0]) * g if state else (1 - betas[0]) * g
        for k, g in grads.items()
    }
    v = {
        k: betas[1] * state["v"][k] + (1 - betas[1]) * g * g if state else (1 - betas[1]) * g * g
        for k, g in grads.items()
    }
    new = {
        k: p - lr * (m[k] / (1 - betas[0] ** step)) / ((v[k] / (1 - betas[1] ** step)).sqrt() + eps)
        if k in grads
        else p
        for k, p in params.items()
    }
    return new, {"step": step, "m": m, "v": v}


def gaussian_nll(covariance, x):
    """Mean negative log-likelihood of the rows of ``x`` under N(0, covariance), by Cholesky.

    ``torch.linalg.cholesky`` raises on a matrix that is not positive-definite: a structure
    that lets one through would end the run here rather than return a wrong number.
    """
    factor = torch.linalg.cholesky(covariance)
    white = torch.linalg.solve_triangular(factor, x.mT, upper=False)
    logdet = 2 * factor.diagonal(dim1=-2, dim2=-1).log().sum(-1)
    return 0.5 * (white.square().sum(-2).mean(-1) + logdet + x.shape[-1] * math.log(2 * math.pi))


def violation(structure, value):
    """Worst relative distance to the set over a batch: ``‖v - project(v)‖ / max(1, ‖v‖)``."""
    gap = (value - structure.project(value)).flatten(-2).norm(dim=-1)
    return (gap / value.flatten(-2).norm(dim=-1).clamp_min(1.0)).max().item()


def plot_or_explain(path):
    """matplotlib's pyplot, or None after saying how to install it."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"--plot {path}: matplotlib is not installed; pip install 'functional-struct[plot]'")
        return None
    return plt


__all__ = ["adam", "gaussian_nll", "plot_or_explain", "violation"]
