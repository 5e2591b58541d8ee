"""Property-testing kit: the laws every structure obeys, as checks, and hypothesis strategies."""

from ._laws import *  # noqa: F403
from ._laws import __all__ as __all__
from ._laws import _batch_elements as _batch_elements
from ._laws import _draw_raw as _draw_raw
from ._laws import _fill as _fill
from ._laws import _leaves as _leaves
from ._laws import _other_shape as _other_shape
