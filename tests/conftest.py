"""Hypothesis profiles.

``default`` (CI and the README's test command) is derandomized: every run draws the same
examples, so a green run stays green. ``thorough`` (``HYPOTHESIS_PROFILE=thorough``) explores:
200 examples a test from a random seed that the run's header prints; replay a failure with
``HYPOTHESIS_SEED=<seed>`` (or ``--hypothesis-seed=<seed>``) and the same profile.
"""

import os
import random

import pytest
from hypothesis import HealthCheck, settings

PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "default")

settings.register_profile(
    "default",
    max_examples=8,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "thorough",
    max_examples=200,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(PROFILE)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    """Give an exploring profile a seed of its own, so that the header can print it."""
    if PROFILE != "default" and config.getoption("hypothesis_seed", None) is None:
        seed = os.environ.get("HYPOTHESIS_SEED") or random.SystemRandom().randrange(2**32)
        config.option.hypothesis_seed = int(seed)


def pytest_report_header(config):
    if PROFILE == "default":
        return "hypothesis profile 'default': derandomized, the same examples every run"
    seed = config.getoption("hypothesis_seed", None)
    return (
        f"hypothesis profile {PROFILE!r}: seed {seed}; replay a failure with "
        f"HYPOTHESIS_SEED={seed} HYPOTHESIS_PROFILE={PROFILE}"
    )
