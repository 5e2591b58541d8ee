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
