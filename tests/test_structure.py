"""The leaf contract (``_structure``): abstract or final, the declared raw form, capabilities."""

import dataclasses

import pytest
import torch

import functional_struct as fs
from functional_struct import _structure, testing
from functional_struct._linear import AbstractLinear


# ----------------------------------------------------------------------- abstract or final
def test_a_structure_that_is_not_a_frozen_dataclass_fails_on_creation_saying_how_to_fix_it():
    class Plain(fs.Diagonal):  # forgot @dataclasses.dataclass(frozen=True)
        pass

    with pytest.raises(TypeError, match=r"Plain must be a frozen dataclass: decorate it with"):
        Plain()

    @dataclasses.dataclass
    class Mutable(fs.AbstractStructure):
        _apply = _inverse = _project = _init = _contains = None

    with pytest.raises(TypeError, match="Mutable must be a frozen dataclass"):
        Mutable()

    @dataclasses.dataclass(frozen=True)
    class Right(fs.Diagonal):
        pass

    assert Right() == Right()
    assert hash(Right()) == hash(Right())


def test_every_hook_a_subclass_must_write_is_abstract():
    assert {"_apply", "_inverse", "_contains", "_project", "_init"} <= (
        fs.AbstractStructure.__abstractmethods__
    )
    assert {"_size", "_size_formula", "_pattern"} <= AbstractLinear.__abstractmethods__

    @dataclasses.dataclass(frozen=True)
    class Half(fs.AbstractStructure):
        def _apply(self, raw):
            return raw

    with pytest.raises(TypeError, match="abstract"):
        Half()


def test_no_hook_is_a_not_implemented_stub():
    import inspect

    import functional_struct

    for module in [m for name, m in vars(functional_struct).items() if name.startswith("_")]:
        if inspect.ismodule(module):
            assert "raise NotImplementedError" not in inspect.getsource(module), module


def test_abstract_linear_is_private():
    assert "AbstractLinear" not in fs.__all__
    assert not hasattr(fs, "AbstractLinear")


# ---------------------------------------------------------------------------- the raw form
@pytest.mark.parametrize(
    ("structure", "shape", "raw"),
    [
        (fs.Orthogonal(), (5, 3), torch.Size([5, 3])),
        (fs.UpperTriangular(packed=True), (4, 4), torch.Size([10])),
        (fs.PositiveSemidefinite(rank=2), (4, 4), torch.Size([4, 2])),
        (fs.LowRank(2), (5, 4), (torch.Size([5, 2]), torch.Size([4, 2]))),
        (fs.FixedRank(1), (3, 2), (torch.Size([3, 1]), torch.Size([1]), torch.Size([2, 1]))),
        (fs.Invertible(), (3, 3), (torch.Size([3, 3]), torch.Size([3, 3]))),
        (
            fs.Sum(fs.Frozen(), fs.LowRank(1)),
            (2, 3),
            (torch.Size([2, 3]),) * 1 + ((torch.Size([2, 1]), torch.Size([3, 1])),),
        ),
        (fs.Chain(fs.Positive(), fs.Diagonal()), (3, 3), torch.Size([3, 3])),
        (fs.Chain(fs.Diagonal(packed=True), fs.Positive()), (3, 3), torch.Size([3])),
    ],
    ids=repr,
)
def test_raw_shape_declares_the_raw_and_value_shape_inverts_it(structure, shape, raw):
    assert structure.raw_shape(shape) == raw
    assert structure.value_shape(structure.raw_shape(shape)) == shape
    testing.check_raw_form(structure, (2, *shape))


@pytest.mark.parametrize(
    ("structure", "raw_shape", "why"),
    [
        (fs.UpperTriangular(packed=True), torch.Size([5]), "fits no n"),
        (fs.LowRank(3), (torch.Size([2, 3]), torch.Size([4, 3])), "rank 3 > min"),
        (fs.PositiveSemidefinite(rank=2), torch.Size([4, 3]), "n x 2 factor"),
        (fs.Orthogonal(), torch.Size([2, 3]), "tall"),
        (fs.Sum(fs.Symmetric(), fs.Diagonal()), (torch.Size([2, 2]), torch.Size([3, 3])), "one"),
    ],
    ids=repr,
)
def test_value_shape_says_why_a_raw_shape_stands_for_no_value(structure, raw_shape, why):
    with pytest.raises(ValueError, match=why):
        structure.value_shape(raw_shape)


def test_factored_raws_name_their_parts_in_errors():
    with pytest.raises(ValueError, match=r"got left \(3, 2\), right \(4, 3\)"):
        fs.LowRank(2).apply((torch.zeros(3, 2), torch.zeros(4, 3)))
    with pytest.raises(TypeError, match=r"raw must be a tuple \(orthogonal, stretch\)"):
        fs.Invertible().apply(torch.zeros(3, 3))


def test_raw_form_of_is_cached_by_value():
    _structure._cached_raw_form.cache_clear()
    _structure.raw_form_of(fs.LowRank(2))
    _structure.raw_form_of(fs.LowRank(2))
    assert _structure._cached_raw_form.cache_info().hits == 1


# -------------------------------------------------------------------------- capabilities
def _declare_trace(monkeypatch):
    """A capability ``trace(raw)`` (the trace of the image), declared on the base for a test."""

    def trace(self, raw):
        raise self._unsupported("trace")

    monkeypatch.setattr(fs.AbstractStructure, "trace", trace, raising=False)
    monkeypatch.setitem(_structure.CAPABILITIES, "trace", "trace")

    def law(structure, raw, value):
        got = structure.trace(raw)
        want = value.diagonal(dim1=-2, dim2=-1).sum(-1)
        if not torch.allclose(got, want):
            raise testing.fail("trace", structure, f"trace {got} vs {want}", raw)

    monkeypatch.setitem(testing.CAPABILITY_LAWS, "trace", testing.CapabilityLaw("trace", law))


@dataclasses.dataclass(frozen=True)
class TracedDiagonal(fs.Diagonal):
    def trace(self, raw):
        return raw.diagonal(dim1=-2, dim2=-1).sum(-1)


@dataclasses.dataclass(frozen=True)
class MistracedDiagonal(fs.Diagonal):
    def trace(self, raw):
        return raw.diagonal(dim1=-2, dim2=-1).sum(-1) + 1


def test_a_capability_is_supported_where_overridden_and_names_itself_where_not(monkeypatch):
    _declare_trace(monkeypatch)
    assert TracedDiagonal().supports("trace")
    assert not fs.Diagonal().supports("trace")
    assert not TracedDiagonal().supports("no such capability")
    with pytest.raises(fs.NotSupported, match=r"Diagonal\(packed=False\) does not support 'trace'"):
        fs.Diagonal().trace(torch.eye(2))
    assert issubclass(fs.NotSupported, NotImplementedError)


def test_check_laws_runs_a_capabilitys_laws_exactly_where_it_is_supported(monkeypatch):
    _declare_trace(monkeypatch)
    assert testing.laws_for(TracedDiagonal())[-1] == "trace"
    assert "trace" not in testing.laws_for(fs.Diagonal())
    fast = ["membership", "trace"]
    testing.check_laws(TracedDiagonal(), (3, 3), laws=fast)
    testing.check_laws(fs.Diagonal(), (3, 3))  # by default only the laws that apply
    with pytest.raises(ValueError, match=r"law 'trace' is about 'trace', which Diagonal"):
        testing.check_laws(fs.Diagonal(), (3, 3), laws=fast)
    with pytest.raises(testing.LawError, match="law 'trace' broke for MistracedDiagonal"):
        testing.check_laws(MistracedDiagonal(), (3, 3), laws=fast)
    with pytest.raises(testing.LawError, match="law 'trace' broke"):
        testing.check_laws(MistracedDiagonal(), (3, 3), laws=None, batch_shapes=((),))


def test_register_law_refuses_a_taken_name_and_an_unknown_capability():
    with pytest.raises(ValueError, match="exists already"):
        testing.register_law("membership", lambda s, r, v: None, capability="x")
    with pytest.raises(ValueError, match="no capability is named 'no_such_capabilty'"):
        testing.register_law("mine", lambda s, r, v: None, capability="no_such_capabilty")


def test_hooks_of_0_1_are_refused_at_class_creation_saying_what_replaced_them():
    with pytest.raises(TypeError, match=r"defines _check_core_shape: hooks of .* raw_shape"):

        @dataclasses.dataclass(frozen=True)
        class Old(fs.Diagonal):
            def _check_core_shape(self, core):
                return None


def test_square_structures_refuse_non_square_raws():
    for structure, raw in [
        (fs.Symmetric(), torch.randn(3, 1)),
        (fs.SkewSymmetric(), torch.randn(3, 3, 1)),
        (fs.Circulant(), torch.randn(2, 3)),
        (fs.Symmetric(), torch.randn(3, 4)),
    ]:
        with pytest.raises(ValueError, match="square"):
            structure.apply(raw)
    with pytest.raises(ValueError, match="square"):
        fs.Sum(fs.Circulant(), fs.UpperTriangular()).apply((torch.randn(3, 4), torch.randn(3, 4)))
    with pytest.raises(ValueError, match="square"):
        fs.Symmetric().value_shape(torch.Size([3, 4]))


def test_value_errors_speak_of_values():
    with pytest.raises(ValueError, match=r"value needs a square matrix"):
        fs.Invertible().contains(torch.randn(1, 3))
    with pytest.raises(ValueError, match=r"value has rank 2 > n"):
        fs.PositiveSemidefinite(rank=2).contains(torch.randn(1, 1))
    with pytest.raises(ValueError, match="takes one tensor of 2 core dims"):
        fs.Diagonal().value_shape((torch.Size([2, 2]),))


def test_a_structure_with_an_unhashable_field_still_applies():
    @dataclasses.dataclass(frozen=True)
    class Scaled(fs.LowRank):
        scales: list = dataclasses.field(default_factory=lambda: [1.0])

    raw = (torch.ones(3, 1), torch.ones(2, 1))
    assert Scaled(1).apply(raw).shape == (3, 2)
