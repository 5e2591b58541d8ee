"""Published results reproduced by the examples, small: factor analysis against scikit-learn,
and the copying task's orthogonal RNN against an unconstrained one."""

import importlib.util
from pathlib import Path

import pytest
import torch


def _example(name):
    path = Path(__file__).parent.parent / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_factor_analysis_matches_scikit_learn():
    """The same maximum-likelihood fit: mean log-likelihoods within 1e-6 relative (the issue
    asks 1e-3), noise variances within 1e-3."""
    pytest.importorskip("sklearn")
    fa = _example("factor_analysis")
    x, _, noise = fa.factor_model(20, 3, 1000, seed=4)
    ll, fitted, _ = fa.fit_fs(x, 3)
    sk_ll, sk_noise, _ = fa.fit_sklearn(x, 3)
    assert abs(ll - sk_ll) / abs(sk_ll) < 1e-6
    torch.testing.assert_close(fitted, sk_noise, rtol=1e-3, atol=1e-4)
    assert ((fitted - noise).abs() / noise).median() < 0.15  # near the truth at N = 1000


@pytest.mark.slow
def test_orthogonal_rnn_remembers_where_the_unconstrained_one_does_not():
    """Copy task, T = 100, 400 steps, one seed (about a minute): the orthogonal RNN goes well
    below the memoryless baseline; the unconstrained RNN with torch's default initialization
    stays at it."""
    import argparse

    ct = _example("copy_task")
    args = argparse.Namespace(hidden=64, T=100)
    gen = torch.Generator().manual_seed(0)
    data = [ct.batch(100, 64, gen) for _ in range(400)]
    base = ct.baseline(100)
    orthogonal, *_ = ct.train_fs(args, "expm", [0], 1e-3, data)
    plain, *_ = ct.train_fs(args, None, [0], 1e-3, data, init="default")
    assert orthogonal[-20:].mean() < 0.5 * base
    assert plain[-20:].mean() > 0.9 * base
