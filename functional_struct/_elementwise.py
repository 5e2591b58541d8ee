"""Elementwise sets: every entry on its own (positive, bounded); any shape, all dims batch."""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ._kernels import inverse_softplus
from ._structure import AbstractStructure
from ._validate import check_real, invalid

__all__ = ["Bounded", "Positive", "inverse_softplus"]


class _AbstractElementwise(AbstractStructure):
    """An elementwise bijection: every entry is a batch element, and its own log-det."""

    core_ndim = 0
    inverse_outside = "project"

    def _init(self, shape, generator, dtype, device) -> Tensor:
        return torch.randn(shape, generator=generator, dtype=dtype, device=device)


@dataclasses.dataclass(frozen=True)
class Positive(_AbstractElementwise):
    """Entries at least ``min``: ``softplus(raw) + min`` (the closed set, ``[min, inf)``).

    ``softplus`` rather than ``exp``: ``exp`` overflows in float32 above 88 and its gradient
    explodes with it; softplus grows linearly. Very negative raw reaches ``min`` itself
    (softplus underflows), which is why the set is closed. ``inverse`` of ``min`` gives a
    finite raw (about -87 in float32) whose image is ``min`` to float precision.
    ``forward_and_log_det`` gives ``log sigmoid(raw)``, the log of the derivative.

    Args:
      min: the lower bound, a finite number.

    Example:
      >>> fs.Positive().apply(torch.tensor([-1.0, 0.0, 1.0]))
      tensor([0.3133, 0.6931, 1.3133])
      >>> fs.Positive(min=1.0).contains(torch.tensor([0.5, 1.0, 3.0]))
      tensor([False,  True,  True])
    """

    min: float = 0.0

    def __post_init__(self) -> None:
        check_real(self, "min", self.min)

    def _apply(self, raw: Tensor) -> Tensor:
        return F.softplus(raw) + self.min

    def _forward_and_log_det(self, raw: Tensor) -> tuple[Tensor, Tensor]:
        return self._apply(raw), F.logsigmoid(raw)  # softplus' = sigmoid

    def _inverse(self, value: Tensor) -> Tensor:
        tiny = torch.finfo(value.dtype).tiny
        return inverse_softplus((value - self.min).clamp_min(tiny))

    def _contains(self, value: Tensor, atol: float, rtol: float) -> Tensor:
        return value >= self.min - (atol + rtol * abs(self.min))

    def _project(self, value: Tensor) -> Tensor:
        return value.clamp_min(self.min)


@dataclasses.dataclass(frozen=True)
class Bounded(_AbstractElementwise):
    """Entries in ``[low, high]``: ``low + (high - low) * sigmoid(raw)``.

    ``forward_and_log_det`` gives ``log(high - low) + log sigmoid(raw) + log sigmoid(-raw)``.

    Args:
      low: the lower bound, finite.
      high: the upper bound, finite and greater than ``low``.

    Example:
      >>> fs.Bounded(-1.0, 1.0).apply(torch.tensor([-50.0, 0.0, 50.0]))
      tensor([-1.,  0.,  1.])
    """

    low: float = 0.0
    high: float = 1.0

    def __post_init__(self) -> None:
        check_real(self, "low", self.low)
        check_real(self, "high", self.high)
        if not self.low < self.high:
            raise invalid(self, "high", f"a finite float > low = {self.low!r}", self.high)

    def _apply(self, raw: Tensor) -> Tensor:
        # Measured from the nearer bound, so that values and derivatives near ``high`` keep
        # their relative precision (1 - sigmoid(x) cancels for large x).
        width = self.high - self.low
        return torch.where(
            raw < 0, self.low + width * torch.sigmoid(raw), self.high - width * torch.sigmoid(-raw)
        )

    def _forward_and_log_det(self, raw: Tensor) -> tuple[Tensor, Tensor]:
        # sigmoid' = sigmoid(x) sigmoid(-x), in logs so that large |raw| stays finite
        log_det = math.log(self.high - self.low) + F.logsigmoid(raw) + F.logsigmoid(-raw)
        return self._apply(raw), log_det

    def _inverse(self, value: Tensor) -> Tensor:
        eps = torch.finfo(value.dtype).eps
        unit = ((value - self.low) / (self.high - self.low)).clamp(eps, 1 - eps)
        return torch.logit(unit)

    def _contains(self, value: Tensor, atol: float, rtol: float) -> Tensor:
        slack = atol + rtol * max(abs(self.low), abs(self.high))
        return (value >= self.low - slack) & (value <= self.high + slack)

    def _project(self, value: Tensor) -> Tensor:
        return value.clamp(self.low, self.high)
