"""The law checker can fail: each law catches a structure broken in its own way.

Every broken structure below differs from a correct one in a single method, and the test
asserts that the law meant to catch it does, with a message naming the law.
"""

import dataclasses

import pytest
import torch
from hypothesis import given, settings

import functional_struct as fs
from functional_struct import testing
from functional_struct._kernels import eye_like


@dataclasses.dataclass(frozen=True)
class NearlyOrthogonal(fs.Orthogonal):
    """Off by 1% in scale: orthogonal to the eye, not to float precision."""

    def _apply(self, raw):
        return 1.01 * super()._apply(raw)


@dataclasses.dataclass(frozen=True)
class TransposingInverse(fs.UpperTriangular):
    def _inverse(self, value):
        return value.mT.clone()


@dataclasses.dataclass(frozen=True)
class DoublingProjection(fs.UpperTriangular):
    """Lands in the set, but is not idempotent and moves members."""

    def _project(self, value):
        return 2 * torch.triu(value)


@dataclasses.dataclass(frozen=True)
class BatchNormalized(fs.UpperTriangular):
    """Normalizes by the largest entry of the *whole batch*: members, but batch-dependent."""

    def _apply(self, raw):
        return torch.triu(raw) / (1 + raw.abs().amax())


@dataclasses.dataclass(frozen=True)
class SolveCayley(fs.Orthogonal):
    """The Cayley map written with linalg.solve, which vmap(jacfwd) gets wrong in torch 2.13."""

    def _apply(self, raw):
        lower = torch.tril(raw, -1)
        eye = eye_like(raw)
        return torch.linalg.solve(eye - lower + lower.mT, eye + lower - lower.mT)


@dataclasses.dataclass(frozen=True)
class WrongBackward(fs.Diagonal):
    """A custom autograd function whose backward is off by a factor of two."""

    def _apply(self, raw):
        return _Doubled.apply(torch.triu(torch.tril(raw)))


class _Doubled(torch.autograd.Function):
    @staticmethod
    def forward(x):
        return x.clone()

    @staticmethod
    def setup_context(ctx, inputs, output):
        pass

    @staticmethod
    def backward(ctx, g):
        return 2 * g

    @staticmethod
    def jvp(ctx, t):
        return t

    @staticmethod
    def vmap(info, in_dims, x):
        return x.clone(), in_dims[0]


@dataclasses.dataclass(frozen=True)
class HostSync(fs.UpperTriangular):
    """Branches on a tensor value in Python: breaks torch.compile(fullgraph=True)."""

    def _apply(self, raw):
        if raw.sum().item() > 1e30:
            return raw
        return torch.triu(raw)


@dataclasses.dataclass(frozen=True)
class InPlace(fs.UpperTriangular):
    def _apply(self, raw):
        return raw.triu_()


@dataclasses.dataclass(frozen=True)
class Unchecked(fs.UpperTriangular):
    """Skips the shape checks, so bad input meets a deep torch error."""

    def apply(self, raw):
        return self._apply(raw)


@dataclasses.dataclass(frozen=True)
class ChangesDtype(fs.UpperTriangular):
    def _project(self, value):
        return torch.triu(value).double()


@dataclasses.dataclass(frozen=True)
class ClaimsProjection(fs.Orthogonal):
    """Says its inverse gives the projection's raw, but the Cayley inverse of a non-member is
    the raw of some other orthogonal matrix."""

    inverse_outside = "project"


@dataclasses.dataclass(frozen=True)
class SingularContains(fs.UpperTriangular):
    """Inverts the value inside contains: raises on a singular value, such as zeros."""

    def _contains(self, value, atol, rtol):
        torch.linalg.inv(value)
        return super()._contains(value, atol, rtol)


@dataclasses.dataclass(frozen=True)
class EmptyBatchCrash(fs.UpperTriangular):
    """Reshapes with -1 next to the batch size, which fails on an empty batch."""

    def _contains(self, value, atol, rtol):
        return super()._contains(value.reshape(value.shape[0], -1).reshape(value.shape), atol, rtol)


@dataclasses.dataclass(frozen=True)
class HostSyncInit(fs.UpperTriangular):
    """Redraws in a Python loop on a tensor's value: a host sync, impossible on 'meta'."""

    def _init(self, shape, generator, dtype, device):
        raw = super()._init(shape, generator, dtype, device)
        while bool((raw.abs() > 100).any()):
            raw = super()._init(shape, generator, dtype, device)
        return raw


@dataclasses.dataclass(frozen=True)
class ContainsEverything(fs.Symmetric):
    """Says every matrix is symmetric."""

    def _contains(self, value, atol, rtol):
        return torch.ones(value.shape[:-2], dtype=torch.bool, device=value.device)


@dataclasses.dataclass(frozen=True)
class MisdeclaredRaw(fs.UpperTriangular):
    """Declares a transposed raw (and inverts that declaration) but takes the value's shape."""

    def raw_shape(self, shape):
        return torch.Size([shape[-1], shape[-2]])

    def value_shape(self, raw_shape):
        return torch.Size([raw_shape[-1], raw_shape[-2]])


@dataclasses.dataclass(frozen=True)
class TransposedUnitary(fs.Unitary):
    """Cayley with the transpose where the conjugate transpose belongs: complex orthogonal."""

    def _apply(self, raw):
        lower = torch.tril(raw, -1)
        eye = eye_like(lower)
        return 2 * torch.linalg.inv(eye - lower + lower.mT) - eye


class _ConjugationSlip(torch.autograd.Function):
    """``(x + xᴴ) / 2`` whose backward forgets to conjugate: right for real input only."""

    @staticmethod
    def forward(x):
        return (x + x.mH) / 2

    @staticmethod
    def setup_context(ctx, inputs, output):
        pass

    @staticmethod
    def backward(ctx, g):
        return (g + g.mT) / 2

    @staticmethod
    def jvp(ctx, t):
        return (t + t.mT) / 2


@dataclasses.dataclass(frozen=True)
class ConjugationSlip(fs.Hermitian):
    """Right values, wrong derivatives with respect to imaginary parts."""

    def _apply(self, raw):
        return _ConjugationSlip.apply(raw)


@dataclasses.dataclass(frozen=True)
class RealDiagonalSkew(fs.SkewHermitian):
    """Keeps the real parts of the diagonal: its projections are not skew-Hermitian."""

    def _project(self, value):
        return (value - value.mT) / 2 + torch.diag_embed(value.diagonal(dim1=-2, dim2=-1))


CASES = [
    pytest.param(NearlyOrthogonal(), "membership", (3, 3), id="membership"),
    pytest.param(TransposingInverse(), "inverse", (3, 3), id="inverse"),
    pytest.param(DoublingProjection(), "projection", (3, 3), id="projection"),
    pytest.param(BatchNormalized(), "batching", (3, 3), id="batching"),
    pytest.param(SolveCayley(), "derivatives", (3, 3), id="derivatives-solve-cayley"),
    pytest.param(WrongBackward(), "derivatives", (3, 3), id="derivatives-wrong-backward"),
    pytest.param(HostSync(), "compile", (3, 3), id="compile"),
    pytest.param(InPlace(), "purity", (3, 3), id="purity-in-place"),
    pytest.param(ChangesDtype(), "purity", (3, 3), id="purity-dtype"),
    pytest.param(Unchecked(), "bad_input", (3, 3), id="bad_input"),
    pytest.param(ClaimsProjection(), "outside", (3, 3), id="outside-wrong-claim"),
    pytest.param(SingularContains(), "outside", (3, 3), id="outside-raises"),
    pytest.param(EmptyBatchCrash(), "batching", (3, 3), id="batching-empty"),
    pytest.param(HostSyncInit(), "purity", (3, 3), id="purity-meta"),
    pytest.param(ContainsEverything(), "outside", (3, 3), id="outside-contains-everything"),
    pytest.param(MisdeclaredRaw(), "raw_form", (2, 3), id="raw-form-misdeclared"),
    pytest.param(TransposedUnitary(), "membership", (3, 3), id="complex-membership-transpose"),
    pytest.param(ConjugationSlip(), "derivatives", (3, 3), id="complex-derivatives-conjugate"),
    pytest.param(RealDiagonalSkew(), "projection", (3, 3), id="complex-projection-diagonal"),
]


@pytest.mark.parametrize(("broken", "law", "shape"), CASES)
def test_each_law_catches_its_breakage(broken, law, shape):
    with pytest.raises(testing.LawError, match=f"law '{law}' broke for {type(broken).__name__}"):
        testing.check_laws(broken, shape, laws=[law])


@pytest.mark.parametrize(("broken", "law", "shape"), CASES)
def test_the_correct_parent_passes_the_same_law(broken, law, shape):
    parent = type(broken).__mro__[1]()
    testing.check_laws(parent, shape, laws=[law])


def test_messages_say_by_how_much_and_on_what():
    with pytest.raises(testing.LawError) as info:
        testing.check_inverse(TransposingInverse(), torch.triu(torch.ones(3, 3)))
    message = str(info.value)
    assert "apply(inverse(v)) vs v: relative error" in message
    assert "input: shape (3, 3) float32" in message


def test_solve_cayley_is_right_without_vmap():
    """The breakage is torch's vmap(jacfwd(solve)) alone: the map itself is orthogonal."""
    testing.check_laws(SolveCayley(), (3, 3), laws=["membership", "projection"], max_magnitude=100)


def test_unknown_law_is_rejected():
    with pytest.raises(ValueError, match="unknown laws"):
        testing.check_laws(fs.Diagonal(), (2, 2), laws=["membership", "vibes"])


def test_law_errors_are_plain_assertion_errors():
    """So check_laws works without pytest, in any test runner or script."""
    assert issubclass(testing.LawError, AssertionError)
    with pytest.raises(AssertionError, match="law 'membership'"):
        testing.check_laws(NearlyOrthogonal(), (2, 2), laws=["membership"])


@settings(max_examples=30)
@given(entry=testing.catalog(), data=__import__("hypothesis").strategies.data())
def test_strategies_draw_shapes_members_and_raw(entry, data):
    shape = data.draw(testing.shapes(entry.structure, max_side=4))
    if entry.structure.square:
        assert shape[-1] == shape[-2]
    member = data.draw(testing.members(entry.structure, shape))
    assert member.shape == shape
    assert entry.structure.contains(member).all()
    raw = data.draw(testing.raw_tensors(entry.structure, shape, max_magnitude=10.0))
    assert entry.structure.apply(raw).shape == shape


@dataclasses.dataclass(frozen=True)
class AbsInPlace(fs.UpperTriangular):
    def _apply(self, raw):
        return torch.triu(raw.abs_())


def test_an_exception_from_the_structure_is_a_law_failure():
    """Run with every law, a structure that modifies its raw fails 'purity' with a message,
    instead of crashing check_laws with torch's error from a later law."""
    with pytest.raises(testing.LawError, match="law 'purity' broke for AbsInPlace"):
        testing.check_laws(AbsInPlace(), (3, 3))


@dataclasses.dataclass(frozen=True)
class FailsAtOne(fs.UpperTriangular):
    """NaN wherever a raw entry is exactly +-1: only magnitude-1 constants hit it."""

    def _apply(self, raw):
        return torch.where(raw.abs() == 1.0, torch.nan, torch.triu(raw))


def test_check_laws_keeps_to_max_magnitude():
    """Raw is drawn from zeros up to max_magnitude, never beyond it (magnitude 1 included)."""
    testing.check_laws(FailsAtOne(), (3, 3), laws=["membership"], max_magnitude=0.5)
    with pytest.raises(testing.LawError, match="law 'membership' broke"):
        testing.check_laws(FailsAtOne(), (3, 3), laws=["membership"])


@dataclasses.dataclass(frozen=True)
class ArithmeticOnLength(fs.UpperTriangular):
    """Finds the packed side by arithmetic on the raw's length, which under dynamic shapes is a
    symbol: inductor then fails to bound the resulting expression (an easy packed-form slip)."""

    def _side(self, packed):
        length = packed.shape[-1]
        lo, hi = 1, length + 2
        while lo < hi:
            mid = (lo + hi) // 2
            if mid * (mid + 1) // 2 < length:
                lo = mid + 1
            else:
                hi = mid
        return lo


def test_the_compile_law_compiles_with_dynamic_shapes():
    broken, parent = ArithmeticOnLength(packed=True), fs.UpperTriangular(packed=True)
    gen = torch.Generator().manual_seed(0)
    raw, other = parent.init((2, 3, 3), generator=gen), parent.init((3, 5, 5), generator=gen)
    testing.check_compile(broken, raw, jacobian=False)  # static shapes: fine
    with pytest.raises(testing.LawError, match=r"law 'compile' broke .*dynamic=True"):
        testing.check_compile(broken, raw, jacobian=False, other=other)
    testing.check_compile(parent, raw, jacobian=False, other=other)
