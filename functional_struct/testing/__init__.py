"""Property-testing kit: the laws every structure obeys, as checks, and hypothesis strategies.

The project's own contract tests run on this module, so what users get is exactly what checks
the library. Each ``check_*`` function tests one law of the design on given inputs and raises
:class:`LawError` (an ``AssertionError``) saying which law broke, on which input, by how much;
:func:`check_laws` draws inputs and runs them all. hypothesis is imported only by the
strategies, so the checks work without it.

Example:
  >>> from functional_struct import testing
  >>> testing.check_laws(fs.UpperTriangular(), (3, 3), laws=("membership", "inverse"))
"""

from .._catalog import CATALOG, CatalogEntry
from ._driver import RAW_KINDS as RAW_KINDS
from ._driver import _draw_raw as _draw_raw
from ._driver import _fill as _fill
from ._driver import _other_shape as _other_shape
from ._driver import check_laws
from ._laws import (
    LawError,
    check_bad_input,
    check_batching,
    check_compile,
    check_derivatives,
    check_inverse,
    check_membership,
    check_outside,
    check_projection,
    check_purity,
    check_raw_form,
    fail,
)
from ._laws import _batch_elements as _batch_elements
from ._laws import _leaves as _leaves
from ._linalg import check_linalg
from ._log_det import check_log_det
from ._manifold import check_manifold
from ._registry import CAPABILITY_LAWS, LAWS, CapabilityLaw, laws_for, register_law
from ._strategies import catalog, members, raw_tensors, shapes, tensors

__all__ = [
    "CAPABILITY_LAWS",
    "CATALOG",
    "LAWS",
    "CapabilityLaw",
    "CatalogEntry",
    "LawError",
    "catalog",
    "check_batching",
    "check_bad_input",
    "check_compile",
    "check_derivatives",
    "check_inverse",
    "check_laws",
    "check_linalg",
    "check_log_det",
    "check_manifold",
    "check_membership",
    "check_outside",
    "check_projection",
    "check_purity",
    "check_raw_form",
    "fail",
    "laws_for",
    "members",
    "raw_tensors",
    "register_law",
    "shapes",
    "tensors",
]
