"""The charts: each registry entry round trips, lands in its set, never raises, batches."""

import math

import pytest
import torch

import functional_struct as fs
from functional_struct import _charts as c

F64 = torch.float64


def _raw(*shape, scale=0.5, seed=0):
    return scale * torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


def _eye(k):
    return torch.eye(k, dtype=F64)


def _read_entries(raw):
    """The raw entries the orthogonal charts read: the strict lower triangle."""
    return torch.tril(raw, -1)


ORTHOGONAL = [pytest.param(chart, id=name) for name, chart in c.ORTHOGONAL_CHARTS.items()]
DEFINITE = [pytest.param(chart, id=name) for name, chart in c.POSITIVE_DEFINITE_CHARTS.items()]


def test_registries_name_their_charts_and_the_structures_use_them():
    for registry in (
        c.ROTATION_CHARTS,
        c.ORTHOGONAL_CHARTS,
        c.POSITIVE_DEFINITE_CHARTS,
        c.UNIT_DETERMINANT_STRETCH_CHARTS,
    ):
        assert all(chart.name == name for name, chart in registry.items())
    assert set(c.ORTHOGONAL_CHARTS) == {"cayley", "expm", "householder"}
    assert set(c.POSITIVE_DEFINITE_CHARTS) == {"cholesky", "expm"}
    raw = _raw(3, 4, 4)
    for name, chart in c.ORTHOGONAL_CHARTS.items():
        assert torch.equal(fs.Orthogonal(name).apply(raw), chart.forward(raw))
    for name, chart in c.POSITIVE_DEFINITE_CHARTS.items():
        assert torch.equal(
            fs.PositiveDefinite(method=name).apply(raw), chart.forward(raw, 1e-6, 1e-5)
        )
    assert torch.equal(fs.SpecialOrthogonal().apply(raw), c.ROTATION_CHARTS["cayley"].forward(raw))


ROTATION_SHAPES = [
    pytest.param(chart, shape, id=f"{name}-{shape[0]}x{shape[1]}")
    for name, chart in c.ROTATION_CHARTS.items()
    for shape in [(4, 4), (5, 3)]
    if name != "expm" or shape[0] == shape[1]  # expm is square only
]


@pytest.mark.parametrize(("chart", "shape"), ROTATION_SHAPES)
def test_rotation_charts_round_trip_to_orthonormal_columns(chart, shape):
    raw = _read_entries(_raw(6, *shape))
    q = chart.forward(raw)
    k = shape[1]
    torch.testing.assert_close(q.mT @ q, _eye(k).expand(6, k, k))
    if shape[0] == shape[1]:
        torch.testing.assert_close(torch.linalg.det(q), torch.ones(6, dtype=F64))
    torch.testing.assert_close(chart.inverse(q), raw)


@pytest.mark.parametrize("chart", ORTHOGONAL)
def test_reflected_charts_take_the_determinant_from_raw_00(chart):
    raw = _read_entries(_raw(6, 4, 4))
    raw[::2, 0, 0] = -1.0
    raw[1::2, 0, 0] = 1.0
    q = chart.forward(raw)
    torch.testing.assert_close(torch.linalg.det(q), raw[:, 0, 0])
    torch.testing.assert_close(chart.inverse(q), raw)
    tall = _read_entries(_raw(2, 5, 3))
    if chart.name != "expm":
        torch.testing.assert_close(chart.inverse(chart.forward(tall)), tall)


def test_cayley_and_householder_edges_give_nan():
    assert c.inverse_cayley(-_eye(2)).isnan().all()
    minus_e1 = _eye(3)[:, :1].neg()
    assert c.inverse_householder(minus_e1)[1:].isnan().all()  # the entries it reads
    assert c.log_rotation(-_eye(2)).isnan().all()


@pytest.mark.parametrize("chart", DEFINITE)
def test_positive_definite_charts_round_trip_above_the_floor(chart):
    floor, relative = 1e-3, 1e-2
    raw = torch.tril(_raw(5, 4, 4))
    value = chart.forward(raw, floor, relative)
    torch.testing.assert_close(value, value.mT)
    eigenvalues = torch.linalg.eigvalsh(value)
    assert (eigenvalues[..., 0] >= floor).all()
    torch.testing.assert_close(chart.inverse(value, floor, relative), raw)
    # A non-member (negative definite) gives a NaN raw triangle, never an exception.
    assert torch.tril(chart.inverse(-value, floor, relative)).isnan().sum() == 5 * 10


def test_unit_determinant_stretch_round_trips_with_determinant_one():
    chart = c.UNIT_DETERMINANT_STRETCH_CHARTS["expm"]
    raw = torch.tril(_raw(5, 4, 4, scale=0.3))
    raw = raw - torch.diag_embed(raw.diagonal(dim1=-2, dim2=-1).mean(-1, keepdim=True).expand(5, 4))
    p = chart.forward(raw)
    torch.testing.assert_close(torch.linalg.det(p), torch.ones(5, dtype=F64))
    torch.testing.assert_close(chart.inverse(p), raw)


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_charts_never_raise_on_non_finite_input(bad):
    raw = _raw(2, 3, 3)
    raw[0, 2, 1] = bad
    for chart in (*c.ROTATION_CHARTS.values(), *c.ORTHOGONAL_CHARTS.values()):
        out = chart.inverse(chart.forward(raw))
        assert torch.isfinite(out[1]).all()
    for chart in c.POSITIVE_DEFINITE_CHARTS.values():
        value = chart.forward(raw, 1e-3, 0.0)
        assert torch.isfinite(chart.inverse(value, 1e-3, 0.0)[1]).all()
    chart = c.UNIT_DETERMINANT_STRETCH_CHARTS["expm"]
    assert torch.isfinite(chart.inverse(chart.forward(raw))[1]).all()


def test_charts_batch_under_vmap():
    raw = _raw(4, 3, 3)
    for chart in c.ORTHOGONAL_CHARTS.values():
        torch.testing.assert_close(torch.vmap(chart.forward)(raw), chart.forward(raw))
    for chart in c.POSITIVE_DEFINITE_CHARTS.values():
        value = chart.forward(raw, 1e-3, 1e-2)
        torch.testing.assert_close(
            torch.vmap(lambda v, chart=chart: chart.inverse(v, 1e-3, 1e-2))(value),
            chart.inverse(value, 1e-3, 1e-2),
        )
