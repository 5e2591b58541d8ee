"""The catalog: complete over the public structures, unique ids, sensible documented ranges."""

import math

import pytest

import functional_struct as fs
from functional_struct import testing

ENTRIES = [pytest.param(e, id=e.id) for e in testing.CATALOG]


def test_every_exported_structure_is_in_the_registry():
    """A public structure missing from the catalog would escape every law of test_contract.py."""
    import inspect

    import functional_struct as fs

    registered = {type(entry.structure) for entry in testing.CATALOG}
    for name in fs.__all__:
        obj = getattr(fs, name)
        if (
            inspect.isclass(obj)
            and issubclass(obj, fs.AbstractStructure)
            and not (inspect.isabstract(obj) or name.startswith("Abstract"))
        ):
            assert obj in registered, f"{name} has no entry in fs.testing.CATALOG"


def test_entry_ids_are_unique():
    """The ids name the parametrized tests of every catalog-driven file: a repeat would merge
    two entries' results under one name."""
    ids = [entry.id for entry in testing.CATALOG]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    assert repeated == []


def test_every_catalogued_structure_is_public():
    """The reverse of the registry check: no entry tests a class users cannot reach."""
    public = {getattr(fs, name) for name in fs.__all__ if isinstance(getattr(fs, name), type)}
    for entry in testing.CATALOG:
        assert type(entry.structure) in public, entry.id
        for part in getattr(entry.structure, "structures", ()):
            assert type(part) in public, (entry.id, part)


@pytest.mark.parametrize("entry", ENTRIES)
def test_ranges_are_positive_and_ordered(entry):
    """Membership is promised up to max_magnitude and finiteness up to finite_magnitude, so
    both are finite and positive and the first cannot exceed the second."""
    assert math.isfinite(entry.max_magnitude)
    assert math.isfinite(entry.finite_magnitude)
    assert 0 < entry.max_magnitude <= entry.finite_magnitude
    assert entry.tolerance is None or 0 < entry.tolerance < 1


@pytest.mark.parametrize("entry", ENTRIES)
def test_core_shapes_are_non_empty_and_positive(entry):
    assert entry.core_shapes
    for shape in entry.core_shapes:
        assert isinstance(shape, tuple)
        assert shape
        assert all(isinstance(n, int) and n >= 1 for n in shape), shape
