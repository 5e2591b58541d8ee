"""Kronecker: construction, the split that decides membership, and factor combinations.

The catalog entries run every law in ``test_contract.py``; these add factor kinds the catalog
does not (a fixed-scale factor, a zero product) and the argument checks.
"""

import pytest
import torch

import functional_struct as fs
from functional_struct import testing

F64 = torch.float64


@pytest.mark.parametrize(
    "structure",
    [
        fs.Kronecker(fs.Orthogonal(), fs.LowerTriangular(), sizes=(3, 2)),
        fs.Kronecker(fs.Correlation(), fs.PositiveSemidefinite(rank=1), sizes=(2, 2)),
        fs.Kronecker(fs.CholeskyFactor(), fs.Symmetric(), sizes=(2, 2)),
    ],
    ids=repr,
)
def test_laws_for_other_factor_kinds(structure):
    """Round trips carry both factors' rounding: in float32 up to 2e-4 (40 seeds swept)."""
    laws = [law for law in testing.laws_for(structure) if law != "compile"]
    shape = structure.value_shape(structure.raw_shape((1, 1)))
    testing.check_laws(structure, shape, laws=laws, max_magnitude=100.0, tolerance=3e-4)


def test_apply_is_the_kronecker_product_and_nests():
    s = fs.Kronecker(fs.Diagonal(), fs.Symmetric(), fs.UpperTriangular(), sizes=(2, 2, (2, 3)))
    raw = s.init((2, 8, 12), generator=torch.Generator().manual_seed(0), dtype=F64)
    a, b, c = (f.apply(r) for f, r in zip(s.factors, raw, strict=True))
    for i in range(2):
        torch.testing.assert_close(s.apply(raw)[i], torch.kron(a[i], torch.kron(b[i], c[i])))


def test_a_zero_product_is_a_member_when_a_factor_set_holds_zero():
    with_zero = fs.Kronecker(fs.Orthogonal(), fs.LowerTriangular(), sizes=(2, 2))
    without = fs.Kronecker(fs.Orthogonal(), fs.PositiveDefinite(), sizes=(2, 2))
    zero = torch.zeros(4, 4, dtype=F64)
    assert bool(with_zero.contains(zero))
    assert not bool(without.contains(zero))
    torch.testing.assert_close(with_zero.apply(with_zero.inverse(zero)), zero)


def test_non_members_are_rejected_and_inverted_to_nan():
    s = fs.Kronecker(fs.PositiveDefinite(), fs.PositiveDefinite(), sizes=(2, 2))
    not_a_product = torch.eye(4, dtype=F64) + 0.1 * torch.ones(4, 4, dtype=F64)
    negative = -s.apply(s.init((4, 4), dtype=F64))
    for value in (not_a_product, negative):
        assert not bool(s.contains(value))
        assert all(bool(torch.isnan(t).all()) for t in s.inverse(value))
        assert bool(s.contains(s.project(value)))


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        ((fs.PositiveDefinite(),), {"sizes": (2,)}, ValueError, "two or more"),
        (
            (fs.PositiveDefinite(), fs.Positive()),
            {"sizes": (2, 2)},
            ValueError,
            r"factors\[1\] must be a matrix structure",
        ),
        (
            (fs.PositiveDefinite(), "PD"),
            {"sizes": (2, 2)},
            TypeError,
            r"factors\[1\] must be a structure",
        ),
        (
            (fs.PositiveDefinite(), fs.PositiveDefinite()),
            {"sizes": (2,)},
            ValueError,
            "a tuple of 2 sizes",
        ),
        (
            (fs.PositiveDefinite(), fs.PositiveDefinite()),
            {"sizes": (2, True)},
            TypeError,
            r"sizes\[1\]",
        ),
        (
            (fs.PositiveDefinite(), fs.PositiveDefinite()),
            {"sizes": (2, (2, 3))},
            ValueError,
            r"sizes\[1\].*accepts",
        ),
        (
            (fs.PositiveDefinite(), fs.PositiveDefinite()),
            {"sizes": (2, 0)},
            ValueError,
            r"sizes\[1\] must be positive",
        ),
    ],
)
def test_bad_arguments(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        fs.Kronecker(*args, **kwargs)


def test_raw_of_the_wrong_factor_shape_names_the_factor():
    s = fs.Kronecker(fs.PositiveDefinite(), fs.PositiveDefinite(), sizes=(2, 3))
    with pytest.raises(ValueError, match="Kronecker"):
        s.apply((torch.zeros(3, 3), torch.zeros(3, 3)))
