"""The one validation policy for structure hyperparameters (the dataclass fields).

- A value of the wrong type is a ``TypeError``; a value of the right type outside the allowed
  range is a ``ValueError``.
- Where a number is meant, Python ``int`` and ``float`` and numpy's number scalars are
  accepted (an int also where a float is meant); ``bool`` never is, nor is a tensor (a
  hyperparameter is a Python value, never a tensor, not even a 0-d one), a string or None
  (unless the field allows None). Values are stored as given.
- Every message reads ``"<class>: <field> must be <expected>, got <what came>."``, where
  ``<class>`` is ``type(owner).__name__`` (a subclass reports its own name) and what came is
  ``"<type> <repr>"`` for a wrong type and ``"<repr>"`` for a value out of range.

Example:
  >>> fs.PositiveDefinite(floor=True)
  Traceback (most recent call last):
  ...
  TypeError: PositiveDefinite: floor must be a finite float > 0, got bool True.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any, TypeGuard

import torch

__all__ = [
    "check_bool",
    "check_bool_matrix",
    "check_choice",
    "check_int",
    "check_ints",
    "check_real",
    "invalid",
]


def invalid(
    owner: object, field: str, expected: str, value: object, cls: type[Exception] = ValueError
) -> Exception:
    """The exception for ``owner``'s ``field``: it must be ``expected`` and ``value`` came.

    Args:
      owner: the structure being built; its class name starts the message.
      field: the field's name (or ``name[i]`` for an element of it).
      expected: what the field must be, as a noun phrase ("an int >= 1").
      value: what came.
      cls: ``TypeError`` for a value of the wrong type, ``ValueError`` (default) for one out of
        range; a ``TypeError`` names the value's type as well.

    Returns:
      The exception, for the caller to raise.
    """
    came = f"{type(value).__name__} {value!r}" if cls is TypeError else repr(value)
    return cls(f"{type(owner).__name__}: {field} must be {expected}, got {came}.")


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: object) -> TypeGuard[float]:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _range_phrase(
    minimum: float | None, maximum: float | None, min_open: bool, max_open: bool
) -> str:
    if minimum is not None and maximum is not None:
        left, right = "(" if min_open else "[", ")" if max_open else "]"
        return f" in {left}{minimum}, {maximum}{right}"
    if minimum is not None:
        return f" {'>' if min_open else '>='} {minimum}"
    if maximum is not None:
        return f" {'<' if max_open else '<='} {maximum}"
    return ""


def _in_range(
    value: Any, minimum: float | None, maximum: float | None, min_open: bool, max_open: bool
) -> bool:
    if minimum is not None and not (value > minimum if min_open else value >= minimum):
        return False
    return maximum is None or (value < maximum if max_open else value <= maximum)


def check_int(
    owner: object,
    field: str,
    value: object,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    allow_none: bool = False,
    expected: str | None = None,
) -> None:
    """Check that ``value`` is an int (not a bool) in ``[minimum, maximum]``.

    Args:
      owner: the structure being built.
      field: the field's name.
      value: the value to check.
      minimum: the smallest allowed value, or None.
      maximum: the largest allowed value, or None.
      allow_none: whether None is allowed.
      expected: the phrase for the message, when the default ("an int >= 1") says too little.

    Raises:
      TypeError: ``value`` is not an int.
      ValueError: ``value`` is out of range.
    """
    if expected is None:
        expected = "an int" + _range_phrase(minimum, maximum, False, False)
        if allow_none:
            expected = f"None or {expected}"
    if value is None and allow_none:
        return
    if not _is_int(value):
        raise invalid(owner, field, expected, value, TypeError)
    if not _in_range(value, minimum, maximum, False, False):
        raise invalid(owner, field, expected, value)


def check_real(
    owner: object,
    field: str,
    value: object,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    min_open: bool = False,
    max_open: bool = False,
    finite: bool = True,
) -> None:
    """Check that ``value`` is a real number (an int or float, not a bool) in range.

    Args:
      owner: the structure being built.
      field: the field's name.
      value: the value to check.
      minimum: the lower bound, or None.
      maximum: the upper bound, or None.
      min_open: whether ``minimum`` itself is excluded.
      max_open: whether ``maximum`` itself is excluded.
      finite: whether NaN and +-inf are excluded (NaN is always excluded by a bound).

    Raises:
      TypeError: ``value`` is not a real number.
      ValueError: ``value`` is out of range (or not finite, where ``finite``).
    """
    bounded = minimum is not None and maximum is not None
    expected = ("a finite float" if finite and not bounded else "a float") + _range_phrase(
        minimum, maximum, min_open, max_open
    )
    if not _is_real(value):
        raise invalid(owner, field, expected, value, TypeError)
    if (finite and not math.isfinite(value)) or not _in_range(
        value, minimum, maximum, min_open, max_open
    ):
        raise invalid(owner, field, expected, value)


def check_bool(owner: object, field: str, value: object) -> None:
    """Check that ``value`` is a bool (``True`` or ``False``; not 0, 1 or a tensor).

    Raises:
      TypeError: ``value`` is not a bool.
    """
    if not isinstance(value, bool):
        raise invalid(owner, field, "a bool", value, TypeError)


def check_choice(owner: object, field: str, value: object, choices: Sequence[str]) -> None:
    """Check that ``value`` is one of the strings ``choices``.

    Raises:
      TypeError: ``value`` is not a string.
      ValueError: ``value`` is a string not among ``choices``.
    """
    expected = f"one of {', '.join(map(repr, choices))}"
    if not isinstance(value, str):
        raise invalid(owner, field, expected, value, TypeError)
    if value not in choices:
        raise invalid(owner, field, expected, value)


def check_ints(owner: object, field: str, value: object, *, minimum: int | None = None) -> tuple:
    """Check a non-empty tuple (or list) of ints, each at least ``minimum``.

    Returns:
      The value as a tuple, for the caller to store.

    Raises:
      TypeError: ``value`` is not a tuple or list, or an element is not an int.
      ValueError: ``value`` is empty, or an element is out of range.
    """
    expected = "a non-empty tuple of ints" + _range_phrase(minimum, None, False, False)
    if not isinstance(value, (tuple, list)):
        raise invalid(owner, field, expected, value, TypeError)
    if not value:
        raise invalid(owner, field, expected, value)
    for i, element in enumerate(value):
        check_int(owner, f"{field}[{i}]", element, minimum=minimum)
    return tuple(value)


def check_bool_matrix(owner: object, field: str, value: object) -> tuple[tuple[bool, ...], ...]:
    """Check a 2-D bool tensor or nested lists/tuples of bools, non-empty and rectangular.

    A bool tensor is accepted here (it is converted, so the stored field is never a tensor).

    Returns:
      The value as a tuple of tuples of bools, for the caller to store.

    Raises:
      TypeError: ``value`` is not a bool tensor or nested lists/tuples, or an entry is not a
        bool.
      ValueError: ``value`` is not 2-D, is empty or is not rectangular.
    """
    expected = "a non-empty rectangular 2-D bool tensor or nested lists of bools"
    rows_of = value
    if isinstance(value, torch.Tensor):
        if value.dtype != torch.bool:
            raise invalid(owner, field, expected, value, TypeError)
        if value.dim() != 2:
            raise invalid(owner, field, expected, value)
        rows_of = value.tolist()
    if not isinstance(rows_of, (tuple, list)) or not all(
        isinstance(row, (tuple, list)) for row in rows_of
    ):
        raise invalid(owner, field, expected, value, TypeError)
    rows = tuple(tuple(row) for row in rows_of)
    if any(not isinstance(x, bool) for row in rows for x in row):
        raise invalid(owner, field, expected, value, TypeError)
    if not rows or not rows[0] or any(len(row) != len(rows[0]) for row in rows):
        raise invalid(owner, field, expected, value)
    return rows
