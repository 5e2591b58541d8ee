"""Interop with stateful PyTorch: a structure as a ``torch.nn.utils.parametrize`` parametrization.

The functional form (``fs.structure`` over plain raw dicts) is the one to use with ``vmap``:
``torch.func.stack_module_state`` rejects parametrized modules, and inside a
``parametrize.cached()`` block ``functional_call`` returns the cached, stale weight. This module
is for users who want the stateful form anyway, for one model at a time.
"""

from __future__ import annotations

from torch import Tensor, nn

from ._structure import AbstractStructure

__all__ = ["StructureParametrization", "as_parametrization"]


class StructureParametrization(nn.Module):
    """A leaf structure as a parametrization module: ``forward`` is ``apply``.

    ``right_inverse`` is ``inverse(project(value))``, so registering it on a layer whose
    weight is not yet in the set starts from the nearest member.

    Args:
      structure: the leaf structure.
    """

    def __init__(self, structure: AbstractStructure) -> None:
        super().__init__()
        if not isinstance(structure, AbstractStructure):
            raise TypeError(
                "as_parametrization: needs a leaf structure (such as fs.Orthogonal()), "
                f"got {type(structure).__name__}."
            )
        self.structure = structure

    def forward(self, raw: Tensor) -> Tensor:
        """The structured weight."""
        return self.structure.apply(raw)

    def right_inverse(self, value: Tensor) -> Tensor:
        """The raw tensor for the member nearest to ``value``."""
        return self.structure.raw_from(value)

    def extra_repr(self) -> str:
        """Show the structure in the module's repr."""
        return repr(self.structure)


def as_parametrization(structure: AbstractStructure) -> StructureParametrization:
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
