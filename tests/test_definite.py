"""PositiveDefinite (both methods), PositiveSemidefinite, CholeskyFactor, Correlation: the
mathematics and float32 numerics they promise."""

import pytest
import torch
from _helpers import GEN, _normal

import functional_struct as fs

PD = fs.PositiveDefinite()


def _factorizable(a):
    return bool((torch.linalg.cholesky_ex(a).info == 0).all())


RAWS = {
    "zeros": lambda n, gen: torch.zeros(n, n),
    "all -80": lambda n, gen: torch.full((n, n), -80.0),
    "all -104 (exp underflows)": lambda n, gen: torch.full((n, n), -104.0),
    "random scale 3": lambda n, gen: 3 * torch.randn(20, n, n, generator=gen),
    "random scale 10": lambda n, gen: 10 * torch.randn(20, n, n, generator=gen),
    "random scale 1e4": lambda n, gen: 1e4 * torch.randn(20, n, n, generator=gen),
    "rank one scale 100": lambda n, gen: 100 * torch.randn(n, 1, generator=gen).expand(n, n),
    "diagonal -80, off-diagonal 5": lambda n, gen: torch.full((n, n), 5.0).diagonal_scatter(
        torch.full((n,), -80.0)
    ),
}


@pytest.mark.parametrize("n", [64, 256])
@pytest.mark.parametrize("kind", list(RAWS))
def test_float32_cholesky_succeeds(kind, n):
    raw = RAWS[kind](n, torch.Generator().manual_seed(n))
    a = PD.apply(raw)
    assert a.dtype == torch.float32
    assert _factorizable(a)
    assert torch.equal(a, a.mT) or torch.allclose(a, a.mT, rtol=1e-6, atol=0)


def test_textbook_recipe_fails_where_ours_holds():
    """The reason for the relative floor: L Lᵀ + eps I fails float32 Cholesky for most draws."""
    raw = 3 * torch.randn(50, 64, 64, generator=torch.Generator().manual_seed(3))
    factor = torch.tril(raw, -1) + torch.diag_embed(
        torch.nn.functional.softplus(raw.diagonal(dim1=-2, dim2=-1))
    )
    textbook = factor @ factor.mT + 1e-6 * torch.eye(64)
    failures = int((torch.linalg.cholesky_ex(textbook).info != 0).sum())
    assert failures >= 30  # measured: 42 of 50
    assert _factorizable(PD.apply(raw))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_eigenvalue_floor(dtype):
    gen = torch.Generator().manual_seed(4)
    raw = torch.randn(30, 8, 8, generator=gen, dtype=dtype) * 2
    raw.diagonal(dim1=-2, dim2=-1).fill_(-30.0)  # L nearly singular: the floor is what's left
    a = PD.apply(raw).double()
    eig = torch.linalg.eigvalsh(a)
    mean = eig.mean(-1)
    bound = PD.floor + PD.relative_floor * (mean - PD.floor) / (1 + PD.relative_floor)
    assert (eig[:, 0] >= bound * (1 - 1e-3)).all()
    assert (eig[:, 0] >= PD.floor).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_inverse_is_exact_for_members(dtype):
    gen = torch.Generator().manual_seed(5)
    raw = PD.init((10, 16, 16), generator=gen, dtype=dtype)
    a = PD.apply(raw)
    back = PD.inverse(a)
    tol = 1e-4 if dtype == torch.float32 else 1e-10
    torch.testing.assert_close(back, raw, rtol=tol, atol=tol)
    torch.testing.assert_close(PD.apply(back), a, rtol=tol, atol=tol)


def test_inverse_of_a_symmetric_positive_definite_matrix_from_data():
    x = torch.randn(200, 5, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    covariance = x.mT @ x / 200
    torch.testing.assert_close(PD.apply(PD.inverse(covariance)), covariance)


def test_inverse_of_non_member_is_nan_not_silent():
    indefinite = torch.diag(torch.tensor([1.0, -1.0, 2.0]))
    assert torch.isnan(PD.inverse(indefinite)).any()
    assert not PD.contains(indefinite)


def test_project_clips_the_spectrum():
    v = torch.diag(torch.tensor([-2.0, 0.5, 3.0], dtype=torch.float64))
    p = PD.project(v)
    eig = torch.linalg.eigvalsh(p)
    assert eig[0] > 0
    assert PD.contains(p)
    torch.testing.assert_close(eig[1:], torch.tensor([0.5, 3.0], dtype=torch.float64))
    # the projection of a non-symmetric matrix starts from its symmetric part
    a = torch.tensor([[2.0, 1.0], [-1.0, 2.0]], dtype=torch.float64)
    torch.testing.assert_close(PD.project(a), torch.eye(2, dtype=torch.float64) * 2)


def test_init_is_well_conditioned_at_n_256():
    a = PD.apply(PD.init((4, 256, 256), generator=torch.Generator().manual_seed(7)))
    assert _factorizable(a)
    assert torch.linalg.cond(a.double()).max() < 2e3


def test_nan_propagates_and_is_not_contained():
    raw = torch.zeros(3, 3)
    raw[1, 0] = float("nan")
    a = PD.apply(raw)
    assert torch.isnan(a).any()
    assert not PD.contains(a)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"floor": 0.0},
        {"floor": -1.0},
        {"relative_floor": -1e-3},
        {"floor": float("inf")},
    ],
)
def test_bad_hyperparameters(kwargs):
    with pytest.raises(ValueError, match="PositiveDefinite: .*floor must be"):
        fs.PositiveDefinite(**kwargs)


def test_hyperparameters_of_the_wrong_type():
    with pytest.raises(TypeError, match="PositiveDefinite: floor must be a finite float > 0"):
        fs.PositiveDefinite(floor="1")


def test_cholesky_factor_is_lower_triangular_with_a_floored_diagonal():
    s = fs.CholeskyFactor()
    factor = s.apply(10 * torch.randn(20, 16, 16, generator=torch.Generator().manual_seed(8)))
    assert torch.equal(factor, factor.tril())
    assert (factor.diagonal(dim1=-2, dim2=-1) >= s.floor).all()
    # No conditioning promise for L Lᵀ from arbitrary raw (that is PositiveDefinite's job), but
    # init is well-conditioned: the Cholesky factor of L Lᵀ is L itself.
    gen = torch.Generator().manual_seed(9)
    factor = s.apply(s.init((20, 64, 64), generator=gen, dtype=torch.float64))
    torch.testing.assert_close(torch.linalg.cholesky(factor @ factor.mT), factor)


def test_cholesky_factor_floor_must_be_positive():
    with pytest.raises(ValueError, match="CholeskyFactor: floor must be a finite float > 0"):
        fs.CholeskyFactor(floor=0.0)


def test_correlation_unit_diagonal_and_float32_cholesky_for_extreme_raw():
    c = fs.Correlation()
    for scale in (1e-3, 1.0, 1e4):
        raw = scale * torch.randn(10, 64, 64, generator=torch.Generator().manual_seed(10))
        value = c.apply(raw)
        torch.testing.assert_close(value.diagonal(dim1=-2, dim2=-1), torch.ones(10, 64))
        assert _factorizable(value)
        assert (torch.linalg.eigvalsh(value.double())[:, 0] >= c.floor * (1 - 1e-3)).all()


def test_correlation_inverse_of_a_sample_correlation():
    x = torch.randn(500, 4, generator=torch.Generator().manual_seed(11), dtype=torch.float64)
    cov = x.mT @ x
    d = cov.diagonal().rsqrt()
    corr = cov * d * d.unsqueeze(-1)
    torch.testing.assert_close(fs.Correlation().apply(fs.Correlation().inverse(corr)), corr)


def test_correlation_project_finds_the_nearest_correlation():
    """[[1, 2], [2, 1]]: the nearest correlation matrix has off-diagonal 1 (eigenvalue 0),
    here lifted to the floor."""
    c = fs.Correlation()
    p = c.project(torch.tensor([[1.0, 2.0], [2.0, 1.0]], dtype=torch.float64))
    assert c.contains(p)
    assert abs(p[0, 1].item() - 1.0) < 1e-3


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cholesky_factor_rejects_a_zero_diagonal(dtype):
    """float32's atol of 1e-4 must not swamp the floor of 1e-6: zeros(3, 3) is no member."""
    s = fs.CholeskyFactor()
    assert not s.contains(torch.zeros(3, 3, dtype=dtype))
    assert not s.contains(torch.eye(3, dtype=dtype) * 0.4e-6)
    on_floor = s.apply(torch.full((3, 3), -200.0, dtype=dtype))  # softplus underflows to 0
    assert s.contains(on_floor)
    assert s.contains(s.project(torch.zeros(3, 3, dtype=dtype)))


def _expm_raws(n):
    gen = torch.Generator().manual_seed(14)
    return {
        "full(0.1)": torch.full((n, n), 0.1),
        "zeros": torch.zeros(n, n),
        "randn": torch.randn(4, n, n, generator=gen),
        "5 randn": 5 * torch.randn(4, n, n, generator=gen),
        "5 randn / n": 5 / n * torch.randn(4, n, n, generator=gen),
    }


def test_expm_float32_positive_definite_at_n64():
    """The documented float32 range of method 'expm' at n = 64."""
    s = fs.PositiveDefinite(method="expm")
    for name, raw in _expm_raws(64).items():
        value = s.apply(raw)
        assert (torch.linalg.cholesky_ex(value).info == 0).all(), name
        assert s.contains(value).all(), name


@pytest.mark.slow
def test_expm_float32_range_at_n256_is_as_documented():
    s = fs.PositiveDefinite(method="expm")
    raws = _expm_raws(256)
    for name in ("zeros", "5 randn / n"):
        value = s.apply(raws[name])
        assert (torch.linalg.cholesky_ex(value).info == 0).all(), name
        assert s.contains(value).all(), name
    # documented as out of range in float32: full(0.1) is not positive-definite in float32
    assert not s.contains(s.apply(raws["full(0.1)"])).any()
    assert s.contains(s.apply(raws["full(0.1)"].double())).all()


def test_semidefinite_zero_is_a_saddle_as_documented():
    s = fs.PositiveSemidefinite()
    raw = s.inverse(torch.zeros(4, 4, dtype=torch.float64)).requires_grad_()
    w = torch.randn(4, 4, generator=torch.Generator().manual_seed(15), dtype=torch.float64)
    (s.apply(raw) * w).sum().backward()
    assert (raw.grad == 0).all()


def test_what_contains_accepts_just_below_the_floor_inverts_to_within_tolerance():
    """contains accepts an eigenvalue a little below the floor (apply's own rounding), so inverse
    must invert it rather than give NaN: this 1 x 1 float32 value of 8.3e-7 (floor 1e-6) comes
    from the thorough hypothesis profile's outside law."""
    value = torch.tensor([[8.2711e-07]])
    for method in ("cholesky", "expm"):
        s = fs.PositiveDefinite(method=method)
        assert s.contains(value)
        torch.testing.assert_close(s.apply(s.inverse(value)), value, atol=1e-6, rtol=0)
        assert not s.contains(torch.tensor([[4e-7]]))
    assert torch.isnan(fs.PositiveDefinite().inverse(torch.tensor([[-1e-3]]))).all()


def test_positive_semidefinite_rank_and_sign():
    s = fs.PositiveSemidefinite(rank=2)
    a = s.apply(s.init((40, 6, 6), generator=GEN().manual_seed(13), dtype=torch.float64))
    eig = torch.linalg.eigvalsh(a)
    assert (eig > -1e-12).all()
    assert (eig[:, :4].abs() < 1e-12).all()
    assert (eig[:, 4:] > 1e-6).all()
    assert not s.contains(torch.eye(6, dtype=torch.float64))  # rank 6 > 2


def test_positive_definite_expm_matches_the_cholesky_method_set():
    expm, cholesky = fs.PositiveDefinite(method="expm"), fs.PositiveDefinite()
    members = cholesky.apply(cholesky.init((20, 5, 5), generator=GEN().manual_seed(14)))
    # The same set: each method inverts the other's members.
    torch.testing.assert_close(expm.apply(expm.inverse(members)), members, rtol=1e-4, atol=1e-4)
    raw = _normal(20, 5, 5, scale=3.0, seed=15)
    a = expm.apply(raw)
    assert (torch.linalg.cholesky_ex(a).info == 0).all()
    assert cholesky.contains(a).all()
