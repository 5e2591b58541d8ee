"""Riemannian SGD and Adam over a structure tree and a tree of points, without state in place.

Both follow geoopt's algorithms (Bécigneul and Ganea, 2019, for Adam): the Euclidean gradient
becomes a Riemannian one (``riemannian_gradient``), the step is taken along the set
(``retract``) and the momentum is carried to the new point (``transport``). Adam's second
moment is one number per point of a structured leaf (the squared norm of the Riemannian
gradient, as geoopt's ``component_inner``), so its steps stay tangent.

State is a ``NamedTuple`` of tensors: the hyperparameters live in it (as ``optax``'s
``inject_hyperparams`` does), so a ``vmap`` over the state runs an ensemble whose members
have their own learning rates in one call.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from numbers import Real as numbers_Real
from typing import Any, NamedTuple

import optree
import torch
from torch import Tensor

from .._structure import AbstractStructure, NotSupported
from .._tree import StructureTree, structure

__all__ = ["AdamState", "Optimizer", "SGDState", "riemannian_adam", "riemannian_sgd"]


class Optimizer(NamedTuple):
    """A pure optimizer: ``init(points) -> state``, ``update(points, grads, state)``.

    ``update`` returns the new points and state; ``grads`` are the Euclidean gradients of the
    loss at ``points``. Nothing is modified in place.
    """

    init: Callable[[Any], Any]
    update: Callable[[Any, Any, Any], tuple[Any, Any]]


class SGDState(NamedTuple):
    """Riemannian SGD's state: the step count, hyperparameters and the momentum tree."""

    step: Tensor
    lr: Tensor
    momentum: Tensor
    dampening: Tensor
    buffer: Any


class AdamState(NamedTuple):
    """Riemannian Adam's state: the step count, hyperparameters and both moment trees."""

    step: Tensor
    lr: Tensor
    beta1: Tensor
    beta2: Tensor
    eps: Tensor
    m: Any
    v: Any


def _tree_of(spec: Any) -> StructureTree:
    return spec if isinstance(spec, StructureTree) else structure(spec)


def _check(
    name: str, value: Any, low: float, high: float | None = None, low_open: bool = False
) -> None:
    """A hyperparameter: a real number (or a tensor of them) in its range, finite."""
    if isinstance(value, Tensor):
        if not value.is_floating_point():
            raise TypeError(f"fs.optim: {name} must be a floating-point tensor, got {value.dtype}.")
        numbers = value.detach().to("cpu", torch.float64).flatten().tolist()
    elif isinstance(value, bool) or not isinstance(value, numbers_Real):
        raise TypeError(f"fs.optim: {name} must be a float or a tensor, got {value!r}.")
    else:
        numbers = [float(value)]
    bound = (
        f"in {'(' if low_open else '['}{low}, {high})"
        if high is not None
        else f"{'>' if low_open else '>='} {low} and finite"
    )
    for number in numbers:
        above = number > low if low_open else number >= low
        below = number < high if high is not None else math.isfinite(number)
        if not (above and below):
            raise ValueError(f"fs.optim: {name} must be {bound}, got {value!r}.")


class _Walk:
    """The leaves of a point tree with their structures, checked once per layout."""

    def __init__(self, tree: StructureTree, points: Any) -> None:
        self.leaves, self.structures, self.paths, self.layout = tree._governing(points)
        for path, leaf, s in zip(self.paths, self.leaves, self.structures, strict=True):
            if not isinstance(leaf, Tensor):
                raise TypeError(
                    f"fs.optim: leaf {path!r} must be a tensor, got {type(leaf).__name__}."
                )
            if not (leaf.is_floating_point() or leaf.is_complex()):
                raise TypeError(
                    f"fs.optim: leaf {path!r} must be floating point or complex, got {leaf.dtype}."
                )
            if s is not None and not s.supports("manifold"):
                raise NotSupported(
                    f"fs.optim: leaf {path!r}: {s._unsupported('manifold')} Optimize its raw "
                    "through apply instead (the parametrization route)."
                )

    def same(self, tree: Any, what: str, shaped: bool = True) -> list[Tensor]:
        """The leaves of ``tree``, which must have the points' layout (and shapes)."""
        leaves, layout = optree.tree_flatten(tree, none_is_leaf=True, namespace="torch")
        if layout != self.layout:
            raise ValueError(f"fs.optim: {what} must have the layout of the points.")
        for path, leaf, point in zip(self.paths, leaves, self.leaves, strict=True):
            if not shaped:
                break
            if not isinstance(leaf, Tensor) or leaf.shape != point.shape:
                got = tuple(leaf.shape) if isinstance(leaf, Tensor) else type(leaf).__name__
                raise ValueError(
                    f"fs.optim: leaf {path!r}: {what} must be a tensor of the point's shape "
                    f"{tuple(point.shape)}, got {got}."
                )
        return leaves

    def build(self, leaves: list[Any]) -> Any:
        return optree.tree_unflatten(self.layout, leaves)


def _hyper(value: Any, like: Tensor) -> Tensor:
    """A hyperparameter as a 0-d float64 tensor (float32 where the device has no float64).

    0-d, it takes no part in dtype promotion: each leaf computes in its own precision, and the
    rate keeps all of its digits whatever the first leaf's dtype.
    """
    dtype = torch.float32 if like.device.type == "mps" else torch.float64
    return torch.as_tensor(value, dtype=dtype, device=like.device)


def _first(leaves: list[Tensor]) -> Tensor:
    if not leaves:
        raise ValueError("fs.optim: the points tree has no tensors.")
    return leaves[0]


def _rgrad(s: AbstractStructure[Any] | None, x: Tensor, g: Tensor) -> Tensor:
    return g if s is None else s.riemannian_gradient(x, g)


def _step(s: AbstractStructure[Any] | None, x: Tensor, direction: Tensor, lr: Tensor) -> Tensor:
    return x - lr * direction if s is None else s.retract(x, -lr * direction)


def _squared(s: AbstractStructure[Any] | None, g: Tensor) -> Tensor:
    """Adam's second-moment increment: ``g²`` per entry, or ``‖g‖²`` per point of a structure.

    Real for complex ``g`` too: per real coordinate of an unstructured leaf (a trailing dim of
    2, as ``torch.optim.Adam`` keeps it), ``‖g‖²`` per point of a structured one.
    """
    if s is None or s.core_ndim == 0:
        return torch.view_as_real(g).square() if g.is_complex() else g * g
    core = tuple(range(g.dim() - s.core_ndim, g.dim()))
    squares = torch.view_as_real(g).square().sum(-1) if g.is_complex() else g * g
    return squares.sum(core, keepdim=True)


def _scale(m: Tensor, denominator: Tensor) -> Tensor:
    """``m / denominator``; per real coordinate where the denominator has them (complex ``m``)."""
    if m.is_complex() and denominator.dim() == m.dim() + 1:
        return torch.view_as_complex(torch.view_as_real(m) / denominator)
    return m / denominator


def _carry(s: AbstractStructure[Any] | None, x: Tensor, new: Tensor, vector: Tensor) -> Tensor:
    return vector if s is None else s.transport(x, new, vector)


def riemannian_sgd(
    spec: Any, lr: float | Tensor, momentum: float | Tensor = 0.0, dampening: float | Tensor = 0.0
) -> Optimizer:
    """Riemannian SGD with momentum (geoopt's ``RiemannianSGD``), as a pure pair.

    Each step: ``b = momentum * b + (1 - dampening) * rgrad`` (``b = rgrad`` at the first),
    ``x = retract(x, -lr * b)``, ``b = transport(b)`` to the new point.

    Args:
      spec: a structure, a structure tree, or a spec for ``fs.structure``; leaves it does
        not govern take Euclidean steps.
      lr: the learning rate (a tensor is fine: under ``vmap`` each member may have its own).
      momentum: the momentum factor, in ``[0, 1)``.
      dampening: dampening of the momentum, in ``[0, 1)``.

    Returns:
      The :class:`Optimizer` pair.
    """
    _check("lr", lr, 0.0)
    _check("momentum", momentum, 0.0, 1.0)
    _check("dampening", dampening, 0.0, 1.0)
    tree = _tree_of(spec)

    def init(points: Any) -> SGDState:
        walk = _Walk(tree, points)
        like = _first(walk.leaves)
        return SGDState(
            torch.zeros((), dtype=torch.long, device=like.device),
            _hyper(lr, like),
            _hyper(momentum, like),
            _hyper(dampening, like),
            walk.build([torch.zeros_like(x) for x in walk.leaves]),
        )

    def update(points: Any, grads: Any, state: SGDState) -> tuple[Any, SGDState]:
        walk = _Walk(tree, points)
        step = state.step + 1
        plain = (step == 1) | (state.momentum == 0)  # torch.optim.SGD's rule: no dampening then
        new_points, buffers = [], []
        for s, x, g, b in zip(
            walk.structures,
            walk.leaves,
            walk.same(grads, "grads"),
            walk.same(state.buffer, "the momentum buffer"),
            strict=True,
        ):
            rg = _rgrad(s, x, g)
            b = torch.where(plain, rg, state.momentum * b + (1 - state.dampening) * rg)
            new = _step(s, x, b, state.lr)
            new_points.append(new)
            buffers.append(_carry(s, x, new, b))
        return walk.build(new_points), state._replace(step=step, buffer=walk.build(buffers))

    return Optimizer(init, update)


def riemannian_adam(
    spec: Any,
    lr: float | Tensor = 1e-3,
    betas: tuple[float | Tensor, float | Tensor] = (0.9, 0.999),
    eps: float | Tensor = 1e-8,
) -> Optimizer:
    """Riemannian Adam (Bécigneul and Ganea; geoopt's ``RiemannianAdam``), as a pure pair.

    Each step: ``g = rgrad``, ``m = β₁ m + (1 - β₁) g``, ``v = β₂ v + (1 - β₂) ‖g‖²``,
    ``x = retract(x, -lr m̂ / (√v̂ + eps))`` with the bias corrections, and
    ``m = transport(m)`` to the new point. On a structured leaf the second moment is one
    number per point (``‖g‖²`` over the structure's core, as geoopt's ``component_inner``),
    so the step is a multiple of the tangent ``m`` and stays tangent; on the Euclidean
    Stiefel manifold this is geoopt's ``RiemannianAdam`` step for step (tested). Geoopt's
    positive-definite manifold squares ``g`` in its affine-invariant metric instead of
    Frobenius'. Unstructured leaves take ``torch.optim.Adam``'s elementwise steps.

    Args:
      spec: a structure, a structure tree, or a spec for ``fs.structure``; leaves it does
        not govern take plain Adam steps.
      lr: the learning rate (a tensor is fine: under ``vmap`` each member may have its own).
      betas: the moment decay rates, each in ``[0, 1)``.
      eps: added to the denominator, > 0.

    Returns:
      The :class:`Optimizer` pair.
    """
    _check("lr", lr, 0.0)
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise TypeError(f"fs.optim: betas must be a pair (beta1, beta2), got {betas!r}.")
    _check("betas[0]", betas[0], 0.0, 1.0)
    _check("betas[1]", betas[1], 0.0, 1.0)
    _check("eps", eps, 0.0, low_open=True)
    tree = _tree_of(spec)

    def init(points: Any) -> AdamState:
        walk = _Walk(tree, points)
        like = _first(walk.leaves)
        zeros = walk.build([torch.zeros_like(x) for x in walk.leaves])
        squares = [
            torch.zeros_like(_squared(s, x))
            for s, x in zip(walk.structures, walk.leaves, strict=True)
        ]
        return AdamState(
            torch.zeros((), dtype=torch.long, device=like.device),
            _hyper(lr, like),
            _hyper(betas[0], like),
            _hyper(betas[1], like),
            _hyper(eps, like),
            zeros,
            walk.build(squares),
        )

    def update(points: Any, grads: Any, state: AdamState) -> tuple[Any, AdamState]:
        walk = _Walk(tree, points)
        step = state.step + 1
        bias1 = 1 - state.beta1**step
        bias2 = 1 - state.beta2**step
        new_points, ms, vs = [], [], []
        for s, x, g, m, v in zip(
            walk.structures,
            walk.leaves,
            walk.same(grads, "grads"),
            walk.same(state.m, "the first moments"),
            walk.same(state.v, "the second moments", shaped=False),
            strict=True,
        ):
            rg = _rgrad(s, x, g)
            m = state.beta1 * m + (1 - state.beta1) * rg
            v = state.beta2 * v + (1 - state.beta2) * _squared(s, rg)
            direction = _scale(m / bias1, (v / bias2).sqrt() + state.eps)
            new = _step(s, x, direction, state.lr)
            new_points.append(new)
            ms.append(_carry(s, x, new, m))
            vs.append(v)
        return walk.build(new_points), state._replace(step=step, m=walk.build(ms), v=walk.build(vs))

    return Optimizer(init, update)
