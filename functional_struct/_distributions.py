"""The bridge to ``torch.distributions``: constraints and bijective transforms.

A structure's set becomes a ``Constraint``, its map a bijective ``Transform`` with the
closed-form log-det (capability ``"log_det"``).

Nothing is registered on import; :func:`register_transforms` opts in to ``biject_to`` and
``transform_to``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.distributions import constraints
from torch.distributions.transforms import Transform

from ._combinators import Chain
from ._elementwise import Bounded, Positive
from ._structure import AbstractStructure

__all__ = [
    "StructureConstraint",
    "StructureTransform",
    "as_transform",
    "constraint",
    "register_transforms",
]


class StructureConstraint(constraints.Constraint):
    """The set of a structure as a ``torch.distributions`` constraint.

    ``check(value)`` is ``structure.contains(value)`` (a bool of the batch shape, with the
    structure's default tolerances); ``event_dim`` is the structure's ``core_ndim``.

    Example:
      >>> c = fs.constraint(fs.PositiveDefinite())
      >>> c.event_dim, c.check(torch.eye(2)).item(), c.check(-torch.eye(2)).item()
      (2, True, False)
    """

    is_discrete = False

    def __init__(self, structure: AbstractStructure[Any]) -> None:
        if not isinstance(structure, AbstractStructure):
            raise TypeError(
                f"fs.constraint: expected a structure (such as fs.PositiveDefinite()), got "
                f"{type(structure).__name__}."
            )
        self.structure = structure
        self.event_dim = structure.core_ndim
        super().__init__()

    def check(self, value: Tensor) -> Tensor:  # noqa: D102 - documented on the class
        return self.structure.contains(value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StructureConstraint) and other.structure == self.structure

    def __hash__(self) -> int:
        return hash((StructureConstraint, self.structure))

    def __repr__(self) -> str:
        return f"StructureConstraint({self.structure!r})"


def _raw_event_dim(structure: AbstractStructure[Any]) -> int:
    """How many trailing dims a raw of ``structure`` has beyond its batch dims."""
    shape = structure.raw_shape((1,) * structure.core_ndim)
    assert isinstance(shape, torch.Size)  # structures with the log-det have one raw tensor
    return len(shape)


class StructureTransform(Transform):
    """A structure's packed map as a bijective ``torch.distributions.Transform``.

    ``domain`` is the real raw tensors (``event_dim`` the raw's core dims: 1 for a packed
    vector, 0 for elementwise sets), ``codomain`` the structure's :class:`StructureConstraint`;
    the forward map is ``apply``, the inverse ``inverse``, and ``log_abs_det_jacobian`` the
    closed form of ``forward_and_log_det`` (batch-shaped, already summed over the event).
    ``forward_shape``/``inverse_shape`` follow the declared raw form, so a
    ``TransformedDistribution`` gets its event shape right. It is pure, so it also works
    under ``vmap``, ``grad`` and ``torch.compile``; build it with :func:`as_transform`.
    """

    bijective = True

    def __init__(self, structure: AbstractStructure[Any], cache_size: int = 0) -> None:
        if not isinstance(structure, AbstractStructure):
            raise TypeError(
                f"fs.as_transform: expected a structure (such as "
                f"fs.PositiveDefinite(packed=True)), got {type(structure).__name__}."
            )
        structure._require("log_det")
        super().__init__(cache_size=cache_size)
        self.structure = structure
        self._raw_dims = _raw_event_dim(structure)

    @constraints.dependent_property(is_discrete=False)
    def domain(self) -> constraints.Constraint:  # noqa: D102 - documented on the class
        if self._raw_dims == 0:
            return constraints.real
        return constraints.independent(constraints.real, self._raw_dims)

    @constraints.dependent_property(is_discrete=False)
    def codomain(self) -> constraints.Constraint:  # noqa: D102 - documented on the class
        return StructureConstraint(self.structure)

    def with_cache(self, cache_size: int = 1) -> StructureTransform:  # noqa: D102
        if self._cache_size == cache_size:
            return self
        return StructureTransform(self.structure, cache_size=cache_size)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StructureTransform) and other.structure == self.structure

    def __hash__(self) -> int:
        return hash((StructureTransform, self.structure))

    def __repr__(self) -> str:
        return f"StructureTransform({self.structure!r})"

    @property
    def sign(self) -> int:
        """+1 for the increasing elementwise maps (``Positive``, ``Bounded``, chains of them)."""
        if _increasing(self.structure):
            return 1
        return super().sign  # matrix maps have none: torch's base raises

    def _call(self, x: Tensor) -> Tensor:
        return self.structure.apply(x)

    def _inverse(self, y: Tensor) -> Tensor:
        return self.structure.inverse(y)

    def log_abs_det_jacobian(self, x: Tensor, y: Tensor) -> Tensor:  # noqa: D102
        return self.structure.forward_and_log_det(x)[1]

    def forward_shape(self, shape: Any) -> torch.Size:  # noqa: D102 - documented on the class
        cut = len(shape) - self._raw_dims
        core = self.structure.value_shape(torch.Size(shape[cut:]))
        return torch.Size((*shape[:cut], *core))

    def inverse_shape(self, shape: Any) -> torch.Size:  # noqa: D102 - documented on the class
        cut = len(shape) - self.structure.core_ndim
        core = self.structure.raw_shape(tuple(shape[cut:]))
        assert isinstance(core, torch.Size)
        return torch.Size((*shape[:cut], *core))


def _increasing(structure: AbstractStructure[Any]) -> bool:
    if isinstance(structure, Chain):
        return all(_increasing(part) for part in structure.structures)
    return isinstance(structure, (Positive, Bounded))


def as_transform(structure: AbstractStructure[Any], cache_size: int = 0) -> StructureTransform:
    """The structure's map as a bijective ``torch.distributions.Transform``.

    Args:
      structure: a structure with the log-det capability (``structure.supports("log_det")``:
        elementwise sets and packed forms).
      cache_size: as for ``torch.distributions.Transform`` (0 or 1).

    Returns:
      A :class:`StructureTransform` from real raw tensors onto the set.

    Raises:
      NotSupported: the structure's map is not a bijection of its raw; the message says what
        to use instead (usually ``packed=True``).

    Example:
      >>> from torch.distributions import Independent, Normal, TransformedDistribution
      >>> t = fs.as_transform(fs.PositiveDefinite(packed=True))
      >>> prior = TransformedDistribution(Independent(Normal(torch.zeros(3), 1.0), 1), [t])
      >>> sample = prior.sample()
      >>> sample.shape, prior.log_prob(sample).shape
      (torch.Size([2, 2]), torch.Size([]))
    """
    return StructureTransform(structure, cache_size=cache_size)


def constraint(structure: AbstractStructure[Any]) -> StructureConstraint:
    """The structure's set as a ``torch.distributions.constraints.Constraint``.

    ``check`` is ``structure.contains``; :func:`register_transforms` lets
    ``torch.distributions.biject_to(constraint(s))`` return ``as_transform(s)``.
    """
    return StructureConstraint(structure)


def register_transforms() -> None:
    """Opt in: make ``biject_to`` and ``transform_to`` answer structure constraints.

    After this call, ``torch.distributions.biject_to(fs.constraint(s))`` (and
    ``transform_to``) is ``fs.as_transform(s)`` for every structure ``s`` with the log-det
    capability, which is what Pyro's automatic guides and ``pyro.param(..., constraint=...)``
    use. Importing the library changes no registry; calling this twice is harmless.

    Example:
      >>> fs.register_transforms()
      >>> torch.distributions.biject_to(fs.constraint(fs.Correlation(packed=True)))
      StructureTransform(Correlation(floor=0.0001, packed=True))
    """
    for registry in (torch.distributions.biject_to, torch.distributions.transform_to):
        registry.register(StructureConstraint, _transform_of)


def _transform_of(c: StructureConstraint) -> StructureTransform:
    return as_transform(c.structure)
