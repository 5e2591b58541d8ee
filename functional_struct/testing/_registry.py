"""The laws by name: :data:`LAWS`, and the laws of optional capabilities (:func:`register_law`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from torch import Tensor

from .._structure import CAPABILITIES, AbstractStructure

LAWS = (
    "membership",
    "inverse",
    "projection",
    "outside",
    "batching",
    "derivatives",
    "compile",
    "purity",
    "bad_input",
    "raw_form",
)
"""The laws every structure obeys, by name, in the order :func:`check_laws` runs them."""


class CapabilityLaw(NamedTuple):
    """A law that holds for the structures with one optional capability.

    Attributes:
      capability: the capability's name (``fs.AbstractStructure.supports(capability)``).
      check: ``check(structure, raw, value)`` raises :class:`LawError` when the law breaks;
        ``raw`` is a batch of raw inputs of moderate size and ``value`` their image.
      edge: if set, the check also runs on raw of this magnitude (capped at the structure's
        ``max_magnitude``), for laws that must hold near the edge of a documented range.
    """

    capability: str
    check: Callable[[Any, Any, Tensor], None]
    edge: float | None = None


CAPABILITY_LAWS: dict[str, CapabilityLaw] = {}
"""Laws of optional capabilities by law name; :func:`register_law` adds to it."""


def register_law(
    name: str,
    check: Callable[[Any, Any, Tensor], None],
    *,
    capability: str,
    edge: float | None = None,
) -> None:
    """Add a law for the structures that have an optional capability.

    :func:`check_laws` then runs it on every structure whose ``supports(capability)`` is True,
    in both dtypes and every batch shape, after the laws in :data:`LAWS`.

    Args:
      name: the law's name (used in ``laws=`` and in :class:`LawError` messages).
      check: ``check(structure, raw, value)``, raising :class:`LawError` via ``fail``.
      capability: the capability the law is about.
      edge: also run the check on raw of this magnitude, capped at ``max_magnitude``.

    Raises:
      ValueError: the name is taken, or no capability has that name.
    """
    if name in LAWS or name in CAPABILITY_LAWS:
        raise ValueError(f"register_law: a law named {name!r} exists already.")
    if capability not in CAPABILITIES:
        raise ValueError(
            f"register_law: no capability is named {capability!r} (declared: "
            f"{', '.join(map(repr, CAPABILITIES)) or 'none'})."
        )
    CAPABILITY_LAWS[name] = CapabilityLaw(capability, check, edge)


def laws_for(structure: AbstractStructure[Any]) -> tuple[str, ...]:
    """Every law :func:`check_laws` runs on ``structure`` by default.

    :data:`LAWS`, then the registered laws of the capabilities it supports.

    Example:
      >>> from functional_struct import testing
      >>> testing.laws_for(fs.Diagonal())[-3:]
      ('raw_form', 'linalg', 'manifold')
      >>> testing.laws_for(fs.DoublyStochastic())[-1]
      'raw_form'
    """
    extra = [n for n, law in CAPABILITY_LAWS.items() if structure.supports(law.capability)]
    return (*LAWS, *extra)
