"""Helpers shared by more than one test file."""

import torch

GEN = torch.Generator


def _normal(*shape, scale=1.0, seed=0, dtype=torch.float32):
    return scale * torch.randn(*shape, generator=GEN().manual_seed(seed), dtype=dtype)
