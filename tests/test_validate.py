"""One validation policy for every hyperparameter of every structure, walked field by field.

A wrong type (a bool, string, None, tensor or float where an int is meant, ...) is a
``TypeError``; a value of the right type out of range is a ``ValueError``; the message names
the class (``type(self).__name__``, so a subclass its own name), the field and what came. The
table below holds, per field name, values that must be accepted, of the wrong type and out of
range; a field that is not in it fails ``test_every_field_is_in_the_table``, so a new
hyperparameter cannot go unvalidated.
"""

from __future__ import annotations

import dataclasses
import inspect
import math

import pytest
import torch

import functional_struct as fs
from functional_struct.testing import CATALOG


@dataclasses.dataclass(frozen=True)
class Rule:
    """Values for one field: accepted, of the wrong type (TypeError), out of range (ValueError)."""

    valid: tuple
    wrong_type: tuple
    out_of_range: tuple


TENSOR = torch.tensor(1.0)
INT_WRONG = (True, False, 1.0, 2.5, "1", None, torch.tensor(1), [1])
REAL_WRONG = (True, False, "1", None, TENSOR, torch.tensor(0.5, dtype=torch.float64), 1j, [1.0])
BOOL_WRONG = (0, 1, "True", None, torch.tensor(True))
CHOICE_WRONG = (5, None, True, torch.tensor(1), ["cayley"])
FLOOR_OUT = (0, 0.0, -1.0, math.nan, math.inf, -math.inf)
PARTS_WRONG = (
    (fs.Positive(), torch.nn.ReLU()),
    (fs.Diagonal(), "x"),
    (None,),
    (fs.Diagonal, fs.Diagonal()),
)

FIELDS: dict[str, Rule] = {
    "diagonal": Rule((-2, 0, 3), INT_WRONG, ()),
    "packed": Rule((False, True), BOOL_WRONG, ()),
    "lower": Rule((0, 2), INT_WRONG, (-1, -5)),
    "upper": Rule((0, 2), INT_WRONG, (-1, -5)),
    "sizes": Rule(
        ((1,), (1, 2), [2, 1]),
        (3, "12", None, TENSOR, (1, True), (1, 1.0), (torch.tensor(1),), ((1,),)),
        ((), [], (0,), (1, -1)),
    ),
    "mask": Rule(
        (((True,),), [[True, False]], torch.ones(2, 2, dtype=torch.bool)),
        (True, None, "x", [[1, 0]], [[True, None]], [True, False], torch.ones(2, 2)),
        ((), [[]], [[True], [True, False]], torch.ones(2, dtype=torch.bool)),
    ),
    "min": Rule((0.0, -3, 1e30), REAL_WRONG, (math.nan, math.inf, -math.inf)),
    "low": Rule((-1.0, -5, 0), REAL_WRONG, (math.nan, -math.inf, math.inf, 1.0, 2)),
    "high": Rule((0.5, 5, 1e30), REAL_WRONG, (math.nan, math.inf, -math.inf, 0.0, -1)),
    "dim": Rule((-1, -2), INT_WRONG, (0, 1)),
    "iterations": Rule((1, 7), INT_WRONG, (0, -1)),
    "tolerance": Rule((0, 0.1, 1e-3), REAL_WRONG, (-1e-3, math.nan, math.inf)),
    "floor": Rule((1e-3, 0.5), REAL_WRONG, FLOOR_OUT),
    "relative_floor": Rule((0, 1e-2, 2), REAL_WRONG, (-1e-3, math.nan, math.inf)),
    "rank": Rule((1, 2), INT_WRONG, (0, -1)),
    "max_norm": Rule((0.5, 3), REAL_WRONG, FLOOR_OUT),
}

# Where a field of one class differs from the field of that name elsewhere.
OVERRIDES: dict[tuple[str, str], Rule] = {
    ("Correlation", "floor"): Rule((1e-3, 0.5), REAL_WRONG, (*FLOOR_OUT, 1, 1.0, 2.0)),
    ("PositiveDefinite", "method"): Rule(("cholesky", "expm"), CHOICE_WRONG, ("qr", "", "EXPM")),
    ("Orthogonal", "method"): Rule(
        ("cayley", "expm", "householder"), CHOICE_WRONG, ("qr", "", "Cayley")
    ),
    ("Unitary", "method"): Rule(("cayley", "expm", "householder"), CHOICE_WRONG, ("qr", "")),
    ("HermitianPositiveDefinite", "method"): Rule(("cholesky",), CHOICE_WRONG, ("expm", "qr")),
    ("DensityMatrix", "rank"): Rule(
        (None, 1, 2), tuple(v for v in INT_WRONG if v is not None), (0, -1)
    ),
    ("PositiveSemidefinite", "rank"): Rule(
        (None, 1, 2), tuple(v for v in INT_WRONG if v is not None), (0, -1)
    ),
    ("Sum", "structures"): Rule(
        ((fs.Diagonal(),), (fs.Diagonal(), fs.Symmetric()), (fs.Frozen(), fs.LowRank(1))),
        PARTS_WRONG,
        ((), (fs.Diagonal(), fs.Positive()), (fs.LowRank(1), fs.Diagonal())),
    ),
    ("Kronecker", "factors"): Rule(
        ((fs.PositiveDefinite(), fs.PositiveDefinite()), (fs.Diagonal(), fs.Symmetric())),
        PARTS_WRONG,
        ((), (fs.PositiveDefinite(),), (fs.Positive(), fs.PositiveDefinite())),
    ),
    ("Kronecker", "sizes"): Rule(
        ((1, 2), (2, 2), [3, 1], ((2, 2), 1)),
        (3, "12", None, TENSOR, (1, True), (1, 1.0), (torch.tensor(1), 2), ((1, 1.0), 2)),
        ((), (2,), (2, 0), (2, -1), (2, (2, 3)), (1, 2, 3)),
    ),
    ("Chain", "structures"): Rule(
        ((fs.Positive(),), (fs.Positive(), fs.Diagonal())),
        PARTS_WRONG,
        ((), (fs.Orthogonal(), fs.Positive()), (fs.Positive(), fs.Simplex())),
    ),
}

# The values of fields without a default, to build the structure around the field under test.
REQUIRED: dict[str, dict] = {
    "Banded": {"lower": 1, "upper": 1},
    "BlockDiagonal": {"sizes": (1, 2)},
    "Masked": {"mask": ((True, False),)},
    "LowRank": {"rank": 1},
    "FixedRank": {"rank": 1},
    "Sum": {"structures": (fs.Diagonal(), fs.Symmetric())},
    "Chain": {"structures": (fs.Positive(), fs.Diagonal())},
    "Kronecker": {"factors": (fs.PositiveDefinite(), fs.PositiveDefinite()), "sizes": (2, 2)},
}


def _classes() -> list[type]:
    """Every structure class in the catalog and every public concrete one."""
    found = {type(entry.structure) for entry in CATALOG}
    for entry in CATALOG:
        found.update(type(part) for part in getattr(entry.structure, "structures", ()))
    for name in fs.__all__:
        obj = getattr(fs, name)
        if (
            inspect.isclass(obj)
            and issubclass(obj, fs.AbstractStructure)
            and not inspect.isabstract(obj)
            and not name.startswith("Abstract")
        ):
            found.add(obj)
    return sorted(found, key=lambda cls: cls.__name__)


def _fields(cls: type) -> list[str]:
    """The hyperparameters: the dataclass fields a caller gives (not derived, private ones)."""
    return [f.name for f in dataclasses.fields(cls) if f.init and not f.name.startswith("_")]


def _rule(cls: type, field: str) -> Rule:
    for klass in cls.__mro__:  # a subclass inherits its base's overrides
        if (klass.__name__, field) in OVERRIDES:
            return OVERRIDES[klass.__name__, field]
    return FIELDS[field]


def _build(cls: type, **changes):
    """``cls`` with its required fields filled in and ``changes`` applied."""
    base = next(k for k in cls.__mro__ if k.__module__.startswith("functional_struct"))
    kwargs = {**REQUIRED.get(base.__name__, {}), **changes}
    if base in (fs.Sum, fs.Chain, fs.Kronecker):  # variadic parts
        parts = kwargs.pop("factors" if base is fs.Kronecker else "structures")
        return cls(*parts, **kwargs)
    return cls(**kwargs)


CLASSES = _classes()
CASES = [(cls, field) for cls in CLASSES for field in _fields(cls)]
IDS = [f"{cls.__name__}.{field}" for cls, field in CASES]


def _parts(value) -> list:
    """What a message may quote for ``value``: it, an element or an element of an element."""
    parts = [value]
    if isinstance(value, (tuple, list)):
        parts += list(value)
        parts += [y for x in value if isinstance(x, (tuple, list)) for y in x]
    return parts


def _check_message(error: Exception, cls: type, field: str, value) -> None:
    message = str(error)
    assert message.startswith(f"{cls.__name__}: "), message
    assert field in message, (field, message)
    assert any(repr(x) in message for x in _parts(value)), (value, message)


def test_the_walk_covers_every_structure():
    names = {cls.__name__ for cls in CLASSES}
    assert {"PositiveDefinite", "Sum", "Chain", "Frozen", "Masked", "Invertible"} <= names
    assert len(CASES) >= 25


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_every_field_is_in_the_table(cls):
    """A new hyperparameter fails here until it has a row (and so a validation test)."""
    missing = [
        field
        for field in _fields(cls)
        if field not in FIELDS and not any((k.__name__, field) in OVERRIDES for k in cls.__mro__)
    ]
    assert missing == [], f"{cls.__name__}: add these fields to FIELDS or OVERRIDES: {missing}"
    required = REQUIRED.get(cls.__name__, {})
    no_default = [
        p.name
        for p in inspect.signature(cls).parameters.values()
        if p.default is inspect.Parameter.empty and p.kind is not inspect.Parameter.VAR_KEYWORD
    ]
    assert sorted(no_default) == sorted(required), cls.__name__


@pytest.mark.parametrize(("cls", "field"), CASES, ids=IDS)
def test_valid_values_are_accepted(cls, field):
    for value in _rule(cls, field).valid:
        structure = _build(cls, **{field: value})
        assert isinstance(structure, cls)


@pytest.mark.parametrize(("cls", "field"), CASES, ids=IDS)
def test_a_wrong_type_is_a_type_error(cls, field):
    rule = _rule(cls, field)
    assert rule.wrong_type, "every field has values of the wrong type"
    for value in rule.wrong_type:
        with pytest.raises(TypeError) as info:
            _build(cls, **{field: value})
        assert type(info.value) is TypeError, (value, info.value)
        _check_message(info.value, cls, field, value)
        typed = [f"{type(x).__name__} {x!r}" for x in _parts(value)]
        assert any(t in str(info.value) for t in typed), (value, str(info.value))


@pytest.mark.parametrize(("cls", "field"), CASES, ids=IDS)
def test_out_of_range_is_a_value_error(cls, field):
    for value in _rule(cls, field).out_of_range:
        with pytest.raises(ValueError, match=f"^{cls.__name__}: ") as info:
            _build(cls, **{field: value})
        assert type(info.value) is ValueError, (value, info.value)
        _check_message(info.value, cls, field, value)


@pytest.mark.parametrize(("cls", "field"), CASES, ids=IDS)
def test_a_subclass_reports_its_own_name(cls, field):
    params = cls.__dict__["__dataclass_params__"]
    renamed = dataclasses.dataclass(frozen=True, init=params.init)(
        type(f"My{cls.__name__}", (cls,), {})
    )
    value = _rule(cls, field).wrong_type[0]
    with pytest.raises(TypeError) as info:
        _build(renamed, **{field: value})
    assert str(info.value).startswith(f"My{cls.__name__}: {field}"), str(info.value)


def test_messages_say_what_was_expected_and_what_came():
    with pytest.raises(TypeError) as info:
        fs.PositiveDefinite(floor=True)
    assert str(info.value) == "PositiveDefinite: floor must be a finite float > 0, got bool True."
    with pytest.raises(ValueError, match="floor") as info:
        fs.PositiveDefinite(floor=-1.0)
    assert str(info.value) == "PositiveDefinite: floor must be a finite float > 0, got -1.0."
    with pytest.raises(TypeError) as info:
        fs.LowRank(2.0)
    assert str(info.value) == "LowRank: rank must be an int >= 1, got float 2.0."
    with pytest.raises(TypeError, match=r"^Simplex: dim must be a negative int .*got str '-1'\.$"):
        fs.Simplex(dim="-1")


def test_numpy_scalars_are_numbers_and_numpy_bools_are_not():
    np = pytest.importorskip("numpy")
    assert fs.PositiveDefinite(floor=np.float32(1e-3)).floor == np.float32(1e-3)
    assert fs.LowRank(np.int64(2)).rank == 2
    assert fs.Bounded(np.float64(-1.0), np.int32(3)).high == 3
    with pytest.raises(TypeError, match="floor must be a finite float > 0, got bool"):
        fs.CholeskyFactor(floor=np.bool_(True))
    with pytest.raises(TypeError, match="rank must be an int >= 1, got float64"):
        fs.FixedRank(np.float64(2.0))
