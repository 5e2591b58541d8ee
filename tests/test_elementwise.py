"""Positive, Bounded: each set's own mathematics."""

import math

import pytest
import torch

import functional_struct as fs

GEN = torch.Generator().manual_seed(0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_positive_is_softplus_with_stable_inverse_and_no_overflow(dtype):
    raw = torch.tensor([-1e4, -104.0, -20.0, 0.0, 20.0, 1e4], dtype=dtype)
    p = fs.Positive().apply(raw)
    assert torch.isfinite(p).all()
    assert (p >= 0).all()
    assert p[-1] == 1e4  # linear growth, where exp would overflow
    g = torch.func.grad(lambda r: fs.Positive().apply(r).sum())(raw)
    assert torch.isfinite(g).all()
    members = torch.tensor([1e-3, 0.5, 3.0, 1e4], dtype=dtype)
    torch.testing.assert_close(fs.Positive().apply(fs.Positive().inverse(members)), members)
    assert torch.isfinite(fs.Positive().inverse(torch.zeros(2, dtype=dtype))).all()


def test_positive_min_and_projection():
    s = fs.Positive(min=2.0)
    assert torch.equal(s.project(torch.tensor([-1.0, 3.0])), torch.tensor([2.0, 3.0]))
    assert (s.apply(torch.randn(100, generator=GEN)) >= 2.0).all()


def test_bounded_stays_inside_and_inverts():
    s = fs.Bounded(-2.0, 3.0)
    out = s.apply(torch.tensor([-1e4, -3.0, 0.0, 3.0, 1e4]))
    assert (out >= -2.0).all()
    assert (out <= 3.0).all()
    members = torch.tensor([-1.5, 0.0, 2.9], dtype=torch.float64)
    torch.testing.assert_close(s.apply(s.inverse(members)), members)
    assert torch.equal(s.project(torch.tensor([-5.0, 5.0])), torch.tensor([-2.0, 3.0]))


def test_bounded_needs_low_below_high():
    with pytest.raises(ValueError, match=r"Bounded: high must be a finite float > low = 2, got 1"):
        fs.Bounded(2, 1)


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        (lambda: fs.Positive(min=math.inf), "Positive: min must be a finite float, got inf"),
    ],
)
def test_bad_hyperparameters(factory, message):
    with pytest.raises(ValueError, match=message):
        factory()
