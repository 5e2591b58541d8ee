"""The pattern machinery of linear structures: Pattern, band_size, band_pattern, square_side."""

import math

import pytest
import torch

from functional_struct._linear import Pattern, band_pattern, band_size, square_side

F64 = torch.float64
CPU = torch.device("cpu")

# 2 x 2 skew-symmetric: (0, 1) holds the coordinate, (1, 0) its negative, the diagonal nothing.
SKEW = Pattern(torch.tensor([1, 0, 0, 1]), torch.tensor([1.0, 1.0, -1.0, 1.0]), 1)
# 2 x 2 Toeplitz: coordinate 0 on the diagonal (twice), 1 above it, 2 below it.
TOEPLITZ = Pattern(torch.tensor([0, 1, 2, 0]), None, 3)


def _triangular(n):
    return n * (n + 1) // 2


def test_unpack_places_coordinates_and_signs():
    upper = band_pattern(3, 0, math.inf, 6, CPU)
    expected = torch.tensor([[1.0, 2.0, 3.0], [0.0, 4.0, 5.0], [0.0, 0.0, 6.0]])
    assert torch.equal(upper.unpack(torch.arange(1.0, 7.0), (3, 3)), expected)
    assert torch.equal(SKEW.unpack(torch.tensor([3.0]), (2, 2)), torch.tensor([[0, 3.0], [-3, 0]]))
    assert torch.equal(
        TOEPLITZ.unpack(torch.tensor([1.0, 2.0, 3.0]), (2, 2)), torch.tensor([[1.0, 2], [3, 1]])
    )


def test_unpack_batches():
    packed = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    out = TOEPLITZ.unpack(packed, (2, 2))
    assert out.shape == (2, 2, 2)
    assert torch.equal(out[1], torch.tensor([[4.0, 5.0], [6.0, 4.0]]))


def test_coordinates_average_the_entries_of_each_coordinate():
    value = torch.tensor([[1.0, 2.0], [3.0, 5.0]], dtype=F64)
    expected = torch.tensor([3.0, 2.0, 3.0], dtype=F64)  # the diagonal's mean, above, below
    torch.testing.assert_close(TOEPLITZ.coordinates(value), expected)
    torch.testing.assert_close(SKEW.coordinates(value), torch.tensor([-0.5], dtype=F64))
    upper = band_pattern(2, 0, math.inf, 3, CPU)
    torch.testing.assert_close(upper.coordinates(value), torch.tensor([1.0, 2.0, 5.0], dtype=F64))


def test_coordinates_of_members_are_exact():
    for pattern, size in ((SKEW, 1), (TOEPLITZ, 3)):
        packed = torch.randn(4, size, generator=torch.Generator().manual_seed(size), dtype=F64)
        assert torch.equal(pattern.coordinates(pattern.unpack(packed, (2, 2))), packed)


def test_project_is_the_orthogonal_projection():
    value = torch.tensor([[1.0, 2.0], [3.0, 5.0]], dtype=F64)
    torch.testing.assert_close(TOEPLITZ.project(value), torch.tensor([[3.0, 2], [3, 3]], dtype=F64))
    torch.testing.assert_close(SKEW.project(value), torch.tensor([[0, -0.5], [0.5, 0]], dtype=F64))
    x = torch.randn(5, 2, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    for pattern in (SKEW, TOEPLITZ):
        p = pattern.project(x)
        torch.testing.assert_close(pattern.project(p), p)  # idempotent
        member = pattern.project(torch.randn(5, 2, 2, dtype=F64))
        assert ((x - p) * member).sum((-2, -1)).abs().max() < 1e-12  # residual orthogonal


def test_entries_outside_the_subspace_do_not_reach_the_coordinates():
    value = torch.tensor([[1.0, 2.0], [math.inf, 4.0]])
    upper = band_pattern(2, 0, math.inf, 3, CPU)
    assert torch.equal(upper.coordinates(value), torch.tensor([1.0, 2.0, 4.0]))
    assert torch.equal(upper.project(value), torch.tensor([[1.0, 2.0], [0.0, 4.0]]))


BANDS = [
    (-math.inf, math.inf),
    (0, math.inf),
    (-math.inf, 0),
    (0, 0),
    (-1, 1),
    (1, 1),
    (-2, 0),
    (0, 2),
    (1, 3),
    (-3, -1),
    (2, 1),
    (-20, 20),
    (9, 12),
]


@pytest.mark.parametrize(("lo", "hi"), BANDS)
def test_band_size_matches_a_brute_force_count(lo, hi):
    for n in range(1, 9):
        count = sum(lo <= j - i <= hi for i in range(n) for j in range(n))
        assert band_size(n, lo, hi) == count, n


@pytest.mark.parametrize(("lo", "hi"), BANDS)
def test_band_pattern_numbers_the_band_row_by_row(lo, hi):
    for n in range(1, 6):
        size = band_size(n, lo, hi)
        out = band_pattern(n, lo, hi, size, CPU).unpack(torch.arange(1.0, size + 1), (n, n))
        i, j = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
        inside = ((j - i) >= lo) & ((j - i) <= hi)
        assert torch.equal(out != 0, inside), n
        assert torch.equal(out[inside], torch.arange(1.0, size + 1)), n


def test_square_side_finds_n():
    for size_of in (_triangular, lambda n: n * n, lambda n: 2 * n - 1):
        for n in (1, 2, 3, 7, 64, 1000):
            assert square_side(size_of(n), size_of, "anything") == (n, None)


def test_square_side_explains_a_length_that_fits_no_n():
    n, message = square_side(7, _triangular, "n(n+1)/2")
    assert n is None
    assert message == (
        "is packed, so its last dim must be n(n+1)/2 for some n: "
        "1 (n=1), 3 (n=2), 6 (n=3), 10 (n=4), 15 (n=5), ...; 7 fits no n"
    )
    for length in (0, 2, 4, 5, 8, 9, 11, 5049):
        side, why = square_side(length, _triangular, "n(n+1)/2")
        assert side is None
        assert why.endswith(f"{length} fits no n"), length
