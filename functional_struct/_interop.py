"""Interop with stateful PyTorch: a structure as a ``torch.nn.utils.parametrize`` parametrization.

The functional form (``fs.structure`` over plain raw dicts) is the one to use with ``vmap``:
``torch.func.stack_module_state`` rejects parametrized modules, and inside a
``parametrize.cached()`` block ``functional_call`` returns the cached, stale weight. This module
is for users who want the stateful form anyway, for one model at a time.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from ._rawform import is_factored, leaves, unflatten
from ._structure import AbstractStructure, raw_form_of

__all__ = ["StructureParametrization", "as_parametrization"]


class StructureParametrization(nn.Module):
    """A leaf structure as a parametrization module: ``forward`` is ``apply``.

    ``right_inverse`` is ``inverse(project(value))``, so registering it on a layer whose
    weight is not yet in the set starts from the nearest member. A factored structure's raw (a
    tuple, nested for ``Sum``) is handed to ``parametrize`` as a flat sequence of tensors, which
    it registers as ``original0``, ``original1``, ...; ``forward`` rebuilds the tuple.

    Args:
      structure: the leaf structure.
    """

    def __init__(self, structure: AbstractStructure[Any]) -> None:
        super().__init__()
        if not isinstance(structure, AbstractStructure):
            raise TypeError(
                "as_parametrization: needs a leaf structure (such as fs.Orthogonal()), "
                f"got {type(structure).__name__}."
            )
        self.structure = structure

    def forward(self, *raw: Tensor) -> Tensor:
        """The structured weight."""
        form = raw_form_of(self.structure)
        if not is_factored(form):
            return self.structure.apply(raw[0])
        return self.structure.apply(unflatten(form, list(raw)))

    def right_inverse(self, value: Tensor) -> Tensor | list[Tensor]:
        """The raw tensor (or flat list of tensors, if factored) of the member nearest ``value``."""
        raw = self.structure.raw_from(value)
        if not is_factored(raw_form_of(self.structure)):
            return raw
        return list(leaves(raw))

    def extra_repr(self) -> str:
        """Show the structure in the module's repr."""
        return repr(self.structure)


def as_parametrization(structure: AbstractStructure[Any]) -> StructureParametrization:
    """Wrap a leaf structure for ``torch.nn.utils.parametrize.register_parametrization``.

    Args:
      structure: the leaf structure.

    Returns:
      A :class:`StructureParametrization`.

    Example:
      >>> from torch.nn.utils import parametrize
      >>> layer = torch.nn.Linear(3, 3)
      >>> _ = parametrize.register_parametrization(
      ...     layer, "weight", fs.as_parametrization(fs.UpperTriangular()))
      >>> torch.equal(layer.weight, layer.weight.triu())
      True
    """
    return StructureParametrization(structure)
