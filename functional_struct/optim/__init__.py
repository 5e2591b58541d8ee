"""Riemannian optimizers as pure ``(init, update)`` pairs: ``fs.optim``.

The second route to a constrained optimum: keep each weight a *member* of its set and step
along the set (Riemannian gradient, retraction, transport of the momentum), instead of
training a raw tensor through ``apply``. Every structure with the ``"manifold"`` capability
can be optimized this way; leaves without a structure take plain Euclidean steps.

Example:
  >>> opt = fs.optim.riemannian_sgd({"w": fs.Orthogonal()}, lr=0.1)
  >>> points = {"w": torch.eye(3)}
  >>> state = opt.init(points)
  >>> points, state = opt.update(points, {"w": torch.randn(3, 3)}, state)
  >>> bool(fs.Orthogonal().contains(points["w"]))
  True
"""

from ._riemannian import AdamState as AdamState
from ._riemannian import Optimizer as Optimizer
from ._riemannian import SGDState as SGDState
from ._riemannian import riemannian_adam as riemannian_adam
from ._riemannian import riemannian_sgd as riemannian_sgd

__all__ = ["AdamState", "Optimizer", "SGDState", "riemannian_adam", "riemannian_sgd"]
