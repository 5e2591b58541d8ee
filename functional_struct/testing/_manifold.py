"""The law of the ``"manifold"`` capability: tangent projection, retraction and transport.

For a batch of members ``x`` and random matrices ``g``, in the members' dtype:

- ``tangent`` is idempotent, and so is applying it to ``riemannian_gradient(x, g)`` (which
  must already be tangent);
- ``retract(x, 0) == x``; ``retract(x, t v)`` is in the set for tangent ``v`` at three step
  sizes, the largest ten times the point's scale; in float64 the derivative of
  ``t -> retract(x, t v)`` at 0 is ``v`` (``jvp``);
- ``transport(x, y, v)`` is tangent at ``y = retract(x, v)``;
- ``vmap`` of ``retract`` equals the batched call;
- 50 steps of Riemannian Adam on a random linear objective never leave the set (the slow
  suite runs 10,000).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.func import jvp, vmap

from .._structure import default_tolerances
from ._laws import fail, widen
from ._registry import register_law


def _require(ok: Any, structure: Any, x: Any, what: str) -> None:
    if not bool(torch.as_tensor(ok).all()):
        raise fail("manifold", structure, what, x)


def _close(a: Tensor, b: Tensor, tol: float) -> Tensor:
    return (a - b).abs() <= tol * (1 + b.abs())


def check_manifold(structure: Any, raw: Any, value: Tensor, steps: int = 50) -> None:
    """Check ``tangent``, ``riemannian_gradient``, ``retract`` and ``transport`` at ``value``."""
    x = value
    dtype = x.dtype
    tol = 1e-4 if dtype in (torch.float32, torch.complex64) else 1e-9
    gen = torch.Generator().manual_seed(0)
    g = torch.randn(x.shape, generator=gen, dtype=dtype).to(x.device)
    scale = x.abs().amax() + 1e-3
    v = structure.tangent(x, g)
    _require(_close(structure.tangent(x, v), v, tol), structure, x, "tangent is not idempotent")
    rg = structure.riemannian_gradient(x, g)
    _require(
        _close(structure.tangent(x, rg), rg, tol),
        structure,
        x,
        "riemannian_gradient is not tangent (tangent(x, rgrad) != rgrad)",
    )
    _require(
        _close(structure.retract(x, torch.zeros_like(v)), x, tol),
        structure,
        x,
        "retract(x, 0) != x",
    )
    unit = v / (v.abs().amax() / scale + 1e-12)
    for t in (0.01, 0.2, 10.0):  # the last far past any chart: a retraction is defined there
        moved = structure.retract(x, t * unit)
        _require(structure.contains(moved), structure, x, f"retract(x, {t} v) left the set")
        w = structure.transport(x, moved, unit)
        _require(
            _close(structure.tangent(moved, w), w, tol * 10),
            structure,
            x,
            "transport(x, y, v) is not tangent at y",
        )
    if x.dim() > structure.core_ndim:
        batched = structure.retract(x, 0.1 * unit)
        core = structure.core_ndim
        flat_x = x.reshape(-1, *x.shape[x.dim() - core :])
        flat_u = unit.reshape(flat_x.shape)
        mapped = vmap(lambda a, b: structure.retract(a, 0.1 * b))(flat_x, flat_u)
        _require(
            _close(mapped.reshape(batched.shape), batched, tol * 10),
            structure,
            x,
            "vmap of retract differs from the batched call",
        )

    x64 = structure.project(widen(x))  # a member to float64 precision, not float32's
    v64 = structure.tangent(x64, widen(unit))
    zero = torch.zeros((), dtype=torch.float64)
    one = torch.ones((), dtype=torch.float64)
    velocity = jvp(lambda t: structure.retract(x64, t * v64), (zero,), (one,))[1]
    _require(
        _close(velocity, v64, 1e-7),
        structure,
        x,
        f"d/dt retract(x, t v) at 0 differs from v by {(velocity - v64).abs().max():.3g}",
    )
    _check_adam_stays(structure, x, steps)


def _check_adam_stays(structure: Any, x: Tensor, steps: int) -> None:
    """Riemannian Adam on ``<C, x>`` (``C`` random) for ``steps`` steps stays in the set."""
    from ..optim import riemannian_adam

    gen = torch.Generator().manual_seed(1)
    target = torch.randn(x.shape, generator=gen, dtype=x.dtype).to(x.device)
    opt = riemannian_adam(structure, lr=0.05)
    point, state = x, opt.init(x)
    atol, rtol = default_tolerances(x.dtype)
    for i in range(steps):
        point, state = opt.update(point, target, state)
        if i % 25 == 24 or i == steps - 1:
            _require(
                structure.contains(point, atol, rtol) & torch.isfinite(point).flatten().all(),
                structure,
                x,
                f"{i + 1} steps of Riemannian Adam left the set",
            )


register_law("manifold", check_manifold, capability="manifold")
