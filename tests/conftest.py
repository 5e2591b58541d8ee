"""Hypothesis profiles: a small default budget; ``HYPOTHESIS_PROFILE=thorough`` for sweeps."""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "default", max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "thorough", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
