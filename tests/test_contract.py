"""The shared contract: every catalog structure against every law of ``fs.testing``.

Each law is one test, parametrized over the whole catalog, each dtype of float32, float64,
complex64 and complex128 the structure accepts, and batch
shapes (), (3,), (2, 3); hypothesis draws the raw inputs (zeros, constants, rank-one and
large magnitudes included). A structure joins by being added to ``fs.testing.CATALOG``.
"""

import optree
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import functional_struct as fs
from functional_struct import testing

ENTRIES = [pytest.param(entry, id=entry.id) for entry in testing.CATALOG]


def _compile_params():
    """Compiling takes seconds per entry: by default, the first entry of each class and form
    (full or packed) compiles; the other option variants run under ``-m slow``."""
    seen, params = set(), []
    for entry in testing.CATALOG:
        key = (type(entry.structure), getattr(entry.structure, "packed", False))
        marks = [pytest.mark.slow] if key in seen else []
        seen.add(key)
        params.append(pytest.param(entry, id=entry.id, marks=marks))
    return params


STANDARD = (torch.float32, torch.float64, torch.complex64, torch.complex128)


def _with_dtypes(entries):
    """(entry, dtype) for every dtype of float32, float64, complex64, complex128 it accepts."""
    return [
        pytest.param(e.values[0], d, id=f"{e.id}-{str(d).removeprefix('torch.')}", marks=e.marks)
        for e in entries
        for d in STANDARD
        if d in e.values[0].structure.dtypes
    ]


ENTRY_DTYPES = _with_dtypes(ENTRIES)
BATCHES = [
    pytest.param((), id="unbatched"),
    pytest.param((3,), id="b3"),
    pytest.param((2, 3), id="b2x3"),
]


def _shape(data, entry, batch):
    return (*batch, *data.draw(st.sampled_from(entry.core_shapes), label="core shape"))


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize(("entry", "dtype"), ENTRY_DTYPES)
@given(data=st.data())
def test_membership(entry, dtype, batch, data):
    shape = _shape(data, entry, batch)
    raw = data.draw(
        testing.raw_tensors(entry.structure, shape, dtype=dtype, max_magnitude=entry.max_magnitude),
        label="raw",
    )
    testing.check_membership(entry.structure, raw)


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize(("entry", "dtype"), ENTRY_DTYPES)
@given(data=st.data())
def test_inverse_round_trip(entry, dtype, batch, data):
    shape = _shape(data, entry, batch)
    member = data.draw(
        testing.members(
            entry.structure, shape, dtype=dtype, max_magnitude=min(3.0, entry.max_magnitude)
        ),
        label="member",
    )
    testing.check_inverse(entry.structure, member, tol=entry.tolerance)


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize(("entry", "dtype"), ENTRY_DTYPES)
@given(data=st.data())
def test_projection(entry, dtype, batch, data):
    shape = _shape(data, entry, batch)
    value = data.draw(testing.tensors(shape, dtype=dtype), label="value")
    member = data.draw(
        testing.members(
            entry.structure, shape, dtype=dtype, max_magnitude=min(3.0, entry.max_magnitude)
        ),
        label="member",
    )
    testing.check_projection(entry.structure, value, member, tol=entry.tolerance)


@pytest.mark.parametrize("batch", [b for b in BATCHES if b.values[0]])
@pytest.mark.parametrize(("entry", "dtype"), ENTRY_DTYPES)
@given(data=st.data())
def test_batching(entry, dtype, batch, data):
    shape = _shape(data, entry, batch)
    raw = data.draw(
        testing.raw_tensors(
            entry.structure, shape, dtype=dtype, max_magnitude=min(3.0, entry.max_magnitude)
        ),
        label="raw",
    )
    value = data.draw(
        testing.members(
            entry.structure, shape, dtype=dtype, max_magnitude=min(3.0, entry.max_magnitude)
        ),
        label="value",
    )
    noise = torch.randn(value.shape, generator=torch.Generator().manual_seed(0), dtype=dtype)
    testing.check_batching(entry.structure, raw, value + 0.1 * noise)


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize(("entry", "dtype"), ENTRY_DTYPES)
@given(data=st.data())
def test_linalg(entry, dtype, batch, data):
    """Every fs.linalg function equals torch.linalg on apply(raw), for every structure: the
    structured rules of those with the "linalg" capability, the dense fallback of the rest."""
    shape = _shape(data, entry, batch)
    raw = data.draw(
        testing.raw_tensors(
            entry.structure, shape, dtype=dtype, max_magnitude=min(3.0, entry.max_magnitude)
        ),
        label="raw",
    )
    if entry.structure.core_ndim < 2 and len(shape) < 2:
        return  # an elementwise or vector set over a vector: no matrix to solve with
    testing.check_linalg(entry.structure, raw, entry.structure.apply(raw))


@pytest.mark.parametrize(("entry", "dtype"), ENTRY_DTYPES)
@given(data=st.data())
def test_outside(entry, dtype, data):
    """Hostile values (non-members, zeros, 1e30, NaN, Inf) never raise; inverse gives the raw
    of the projection or NaN, as the structure's inverse_outside says."""
    core = data.draw(st.sampled_from(entry.core_shapes), label="core shape")
    value = data.draw(testing.tensors((3, *core), dtype=dtype), label="value")
    member = data.draw(
        testing.members(
            entry.structure, (2, *core), dtype=dtype, max_magnitude=min(3.0, entry.max_magnitude)
        ),
        label="member",
    )
    both = torch.cat([testing._batch_elements(entry.structure, v) for v in (value, member)])
    testing.check_outside(entry.structure, both, tol=entry.tolerance)


PRECISE = [p for p in ENTRY_DTYPES if p.values[1] in (torch.float64, torch.complex128)]


def _tmap(fn, tree):
    return optree.tree_map(fn, tree, namespace="torch")


def _real_apply(structure, dtype):
    """``structure.apply`` as a map of real tensors (real views, for complex ``dtype``)."""
    if not dtype.is_complex:
        return structure.apply
    return lambda r: torch.view_as_real(structure.apply(_tmap(torch.view_as_complex, r)))


@pytest.mark.parametrize(("entry", "dtype"), PRECISE)
@given(data=st.data())
def test_derivatives(entry, dtype, data):
    """Against float64 finite differences (complex: in the real and imaginary parts)."""
    core = data.draw(st.sampled_from(entry.core_shapes), label="core shape")
    if not entry.differentiable:  # blocks gradients on purpose: exactly zero where frozen
        raw = entry.structure.init((2, *core), dtype=dtype)
        if dtype.is_complex:  # torch.func's Jacobians take real tensors: the real view's
            raw = _tmap(torch.view_as_real, raw)
        forward = torch.func.jacfwd(_real_apply(entry.structure, dtype))(raw)
        backward = torch.func.jacrev(_real_apply(entry.structure, dtype))(raw)
        for f, b in zip(testing._leaves(forward), testing._leaves(backward), strict=True):
            torch.testing.assert_close(f, b)
        parts = getattr(entry.structure, "structures", (entry.structure,))
        jacobians = forward if isinstance(raw, tuple) else (forward,)
        for part, jac in zip(parts, jacobians, strict=True):
            if isinstance(part, fs.Frozen):
                assert torch.equal(jac, torch.zeros_like(jac))
            else:
                assert all(leaf.abs().max() > 0 for leaf in testing._leaves(jac))
        return
    raw = data.draw(
        testing.raw_tensors(
            entry.structure,
            (2, *core),
            dtype=dtype,
            max_magnitude=3.0,
            min_magnitude=1.0,
            kinds=("init", "normal"),
        ),
        label="raw",
    )
    testing.check_derivatives(entry.structure, raw)


@pytest.mark.parametrize("entry", ENTRIES)
@given(data=st.data())
def test_gradients_finite_everywhere(entry, data):
    """Zeros, constants and large magnitudes too: no NaN gradient anywhere in the range."""
    core = data.draw(st.sampled_from(entry.core_shapes), label="core shape")
    accepted = [d for d in STANDARD if d in entry.structure.dtypes]
    dtype = data.draw(st.sampled_from(accepted), label="dtype")
    raw = data.draw(
        testing.raw_tensors(
            entry.structure, (2, *core), dtype=dtype, max_magnitude=entry.max_magnitude
        ),
        label="raw",
    )
    weights = torch.randn((2, *core), dtype=dtype)
    grads = torch.func.grad(lambda r: (weights * entry.structure.apply(r)).real.sum())(raw)
    assert all(torch.isfinite(g).all() for g in testing._leaves(grads))


# Inductor takes about 20 s per compile of Sinkhorn's 50 unrolled steps: the dynamic-shape
# compiles of DoublyStochastic run under -m slow.
_SLOW_DYNAMIC = (fs.DoublyStochastic,)


@pytest.mark.parametrize("entry", _compile_params())
def test_compile(entry):
    core = entry.core_shapes[-1]
    gen = torch.Generator().manual_seed(0)
    raw = entry.structure.init((2, *core), generator=gen)
    other = entry.structure.init(testing._other_shape(entry.structure, core), generator=gen)
    if isinstance(entry.structure, _SLOW_DYNAMIC):
        other = None
    testing.check_compile(entry.structure, raw, other=other)


@pytest.mark.slow
@pytest.mark.parametrize(
    "entry", [e for e in ENTRIES if isinstance(e.values[0].structure, _SLOW_DYNAMIC)]
)
def test_compile_dynamic_shapes_of_the_slow_compilers(entry):
    core = entry.core_shapes[-1]
    gen = torch.Generator().manual_seed(0)
    raw = entry.structure.init((2, *core), generator=gen)
    other = entry.structure.init(testing._other_shape(entry.structure, core), generator=gen)
    testing.check_compile(entry.structure, raw, jacobian=False, other=other)


@pytest.mark.parametrize(("entry", "dtype"), ENTRY_DTYPES)
def test_purity(entry, dtype):
    gen = torch.Generator().manual_seed(0)
    for core in entry.core_shapes:
        raw = entry.structure.init((3, *core), generator=gen, dtype=dtype)
        testing.check_purity(
            entry.structure, raw, torch.randn((3, *core), generator=gen, dtype=dtype)
        )


@pytest.mark.parametrize("entry", ENTRIES)
def test_bad_input(entry):
    for core in entry.core_shapes:
        testing.check_bad_input(entry.structure, core)


@pytest.mark.parametrize("entry", ENTRIES)
def test_check_laws_passes(entry):
    """The public one-call checker agrees with the per-law tests above."""
    testing.check_laws(
        entry.structure,
        entry.core_shapes[-1],
        max_magnitude=entry.max_magnitude,
        laws=[
            law
            for law in testing.laws_for(entry.structure)
            if law != "compile" and (entry.differentiable or law != "derivatives")
        ],
        tolerance=entry.tolerance,
    )


@pytest.mark.parametrize("entry", ENTRIES)
def test_raw_form(entry):
    for core in entry.core_shapes:
        for batch in ((), (3,), (0,)):
            testing.check_raw_form(entry.structure, (*batch, *core))


LOG_DET_EDGE = testing._log_det.EDGE
LOG_DET_ENTRIES = [e for e in ENTRIES if e.values[0].structure.supports("log_det")]


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize(("entry", "dtype"), _with_dtypes(LOG_DET_ENTRIES))
@given(data=st.data())
def test_log_det(entry, dtype, batch, data):
    """The closed-form log-det equals the dense Jacobian's, for raw up to the range's edge."""
    shape = _shape(data, entry, batch)
    raw = data.draw(
        testing.raw_tensors(
            entry.structure,
            shape,
            dtype=dtype,
            max_magnitude=min(LOG_DET_EDGE, entry.max_magnitude),
        ),
        label="raw",
    )
    testing.check_log_det(entry.structure, raw, entry.structure.apply(raw))


@pytest.mark.parametrize("entry", [e for e in ENTRIES if e not in LOG_DET_ENTRIES])
def test_no_log_det_says_why(entry):
    """A structure without the capability refuses it, naming itself and a reason."""
    structure = entry.structure
    raw = structure.init(entry.core_shapes[0])
    with pytest.raises(fs.NotSupported, match=r"does not support 'log_det'.*: \S+") as info:
        structure.forward_and_log_det(raw)
    assert repr(structure) in str(info.value)


MANIFOLD_ENTRIES = [e for e in ENTRIES if e.values[0].structure.supports("manifold")]


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize(("entry", "dtype"), _with_dtypes(MANIFOLD_ENTRIES))
def test_manifold(entry, dtype, batch):
    """Tangent projection, retraction and transport of every structure that has them."""
    gen = torch.Generator().manual_seed(0)
    for core in entry.core_shapes:
        raw = entry.structure.init((*batch, *core), generator=gen, dtype=dtype)
        testing.check_manifold(entry.structure, raw, entry.structure.apply(raw))
