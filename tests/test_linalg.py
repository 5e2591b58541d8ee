"""fs.linalg: torch's semantics, the structured rules, singular members, transforms, errors.

The contract tests (``test_contract.py::test_linalg``) compare every function with the dense
path for every catalog structure; this file pins what they do not: shapes and broadcasting,
the choice of rule, singular and non-finite inputs, ``vmap(jacfwd)`` against a loop (where
torch 2.13's own solves are wrong), compile, and bad arguments.
"""

import pytest
import torch
from torch.func import grad, jacfwd, vmap

import functional_struct as fs
from functional_struct import linalg, testing
from functional_struct.linalg import operators as ops

F64 = torch.float64
LOW_RANK_PLUS_DIAGONAL = (fs.PositiveSemidefinite(rank=3), fs.Chain(fs.Positive(), fs.Diagonal()))


def _raw(structure, shape, seed=0, dtype=F64):
    return structure.init(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _covariance_raw(batch=(), n=12, seed=0):
    gen = torch.Generator().manual_seed(seed)
    factor = torch.randn(*batch, n, 3, generator=gen, dtype=F64)
    diagonal = torch.randn(*batch, n, n, generator=gen, dtype=F64)
    return factor, diagonal


def _dense(structures, raw):
    if isinstance(structures, tuple):
        return sum(s.apply(r) for s, r in zip(structures, raw, strict=True))
    return structures.apply(raw)


# ------------------------------------------------------------------------------- semantics
@pytest.mark.parametrize(
    "b_shape", [(5,), (4, 5), (5, 2), (4, 5, 2), (3, 1, 5, 2)], ids=lambda s: str(s)
)
def test_solve_shapes_follow_torch(b_shape):
    """Vector or matrix right-hand sides, with broadcasting, exactly as torch.linalg.solve."""
    s = fs.PositiveDefinite()
    raw = _raw(s, (4, 5, 5))
    b = torch.randn(b_shape, dtype=F64)
    want = torch.linalg.solve(s.apply(raw), b)
    got = linalg.solve(s, raw, b)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want)


def test_matmul_and_linear_follow_torch():
    s = fs.LowRank(2)
    raw = _raw(s, (3, 4, 6))
    w = s.apply(raw)
    for x in (
        torch.randn(6, dtype=F64),
        torch.randn(6, 2, dtype=F64),
        torch.randn(5, 3, 6, 2, dtype=F64),
    ):
        torch.testing.assert_close(linalg.matmul(s, raw, x), w @ x)
    x, bias = torch.randn(3, 7, 6, dtype=F64), torch.randn(4, dtype=F64)
    torch.testing.assert_close(linalg.linear(x, s, raw, bias), x @ w.mT + bias)
    torch.testing.assert_close(linalg.linear(x[0, 0], s, raw), x[0, 0] @ w.mT)


def test_logdet_follows_torch_for_negative_and_zero_determinants():
    s = fs.Diagonal(packed=True)
    raw = torch.tensor([[2.0, 3.0], [-2.0, 3.0], [0.0, 3.0]], dtype=F64)
    want = torch.logdet(s.apply(raw))
    got = linalg.logdet(s, raw)
    torch.testing.assert_close(got, want, equal_nan=True)
    sign, log = linalg.slogdet(s, raw)
    want_sign, want_log = torch.linalg.slogdet(s.apply(raw))
    torch.testing.assert_close((sign, log), (want_sign, want_log))


def test_inv_quad_logdet_is_solve_and_logdet():
    raw = _covariance_raw((4,))
    b = torch.randn(6, 4, 12, dtype=F64)  # six draws for each of four covariances
    quad, logdet = linalg.inv_quad_logdet(LOW_RANK_PLUS_DIAGONAL, raw, b)
    a = _dense(LOW_RANK_PLUS_DIAGONAL, raw)
    assert quad.shape == (6, 4)
    assert logdet.shape == (4,)
    torch.testing.assert_close(
        quad, (b * torch.linalg.solve(a, b.unsqueeze(-1)).squeeze(-1)).sum(-1)
    )
    torch.testing.assert_close(logdet, torch.logdet(a))


def test_inverse_diagonal_trace_root():
    raw = _covariance_raw((2,))
    a = _dense(LOW_RANK_PLUS_DIAGONAL, raw)
    torch.testing.assert_close(linalg.inv(LOW_RANK_PLUS_DIAGONAL, raw), torch.linalg.inv(a))
    assert linalg.inverse is linalg.inv
    torch.testing.assert_close(
        linalg.diagonal(LOW_RANK_PLUS_DIAGONAL, raw), a.diagonal(dim1=-2, dim2=-1)
    )
    torch.testing.assert_close(
        linalg.trace(LOW_RANK_PLUS_DIAGONAL, raw), a.diagonal(dim1=-2, dim2=-1).sum(-1)
    )
    root = linalg.root(LOW_RANK_PLUS_DIAGONAL, raw)
    assert root.shape == (2, 12, 15)  # [sqrt(D) F]: n + r columns
    torch.testing.assert_close(root @ root.mT, a)


def test_sample_has_the_covariance():
    raw = _covariance_raw()
    a = _dense(LOW_RANK_PLUS_DIAGONAL, raw)
    draws = linalg.sample(
        LOW_RANK_PLUS_DIAGONAL, raw, (40000,), generator=torch.Generator().manual_seed(0)
    )
    assert draws.shape == (40000, 12)
    empirical = draws.mT @ draws / draws.shape[0]
    # Each entry's standard error is sqrt((a_ij² + a_ii a_jj) / N); five of them.
    scale = ((a**2 + a.diagonal()[:, None] * a.diagonal()[None, :]) / draws.shape[0]).sqrt()
    assert bool(((empirical - a).abs() <= 5 * scale).all())


# ----------------------------------------------------------------------------------- rules
@pytest.mark.parametrize(
    ("structure", "function", "rule"),
    [
        (LOW_RANK_PLUS_DIAGONAL, "solve", "Woodbury"),
        (LOW_RANK_PLUS_DIAGONAL, "logdet", "determinant lemma"),
        (fs.Circulant(packed=True), "solve", "circulant: FFT"),
        (fs.Toeplitz(packed=True), "matmul", "Toeplitz: FFT"),
        (fs.Toeplitz(packed=True), "solve", "dense: LU"),
        (fs.Hankel(), "matmul", "Hankel"),
        (fs.Orthogonal(), "logdet", "orthogonal: 0"),
        (fs.PositiveDefinite(), "inv_quad_logdet", "Cholesky"),
        (fs.Correlation(), "solve", "Cholesky"),
        (fs.CholeskyFactor(), "solve", "triangular"),
        (fs.UpperTriangular(), "logdet", "triangular"),
        (fs.LowerTriangular(diagonal=1), "solve", "dense"),
        (fs.Diagonal(packed=True), "root", "sqrt(d)"),
        (fs.LowRank(2), "matmul", "U (Vᵀ x)"),
        (fs.LowRank(2), "solve", "singular"),
        (fs.PositiveSemidefinite(rank=2), "root", "factor F"),
        (fs.BlockDiagonal((1, 3)), "solve", "per block"),
        (fs.Sum(fs.Frozen(), fs.LowRank(1)), "matmul", "sum of the terms' products"),
        (fs.Chain(fs.Positive(), fs.Diagonal()), "logdet", "diagonal"),
        (
            fs.Kronecker(fs.PositiveDefinite(), fs.PositiveDefinite(), sizes=(2, 2)),
            "logdet",
            "n2 log|det A|",
        ),
        (fs.Symmetric(), "solve", "dense: LU"),
    ],
)
def test_method_names_the_rule(structure, function, rule):
    assert rule in linalg.method(structure, function, (4, 4))


def test_banded_product_is_by_diagonals_when_narrow():
    s = fs.Banded(1, 2)
    assert "one elementwise product per diagonal" in linalg.method(s, "matmul", (32, 32))
    assert "dense" in linalg.method(s, "matmul", (8, 8))
    raw = _raw(s, (2, 32, 32))
    x = torch.randn(32, 3, dtype=F64)
    torch.testing.assert_close(linalg.matmul(s, raw, x), s.apply(raw) @ x)
    lower = fs.Banded(2, 0)
    raw = _raw(lower, (32, 32)) + 3 * torch.eye(32, dtype=F64)
    assert "triangular" in linalg.method(lower, "solve", (32, 32))
    torch.testing.assert_close(linalg.solve(lower, raw, x), torch.linalg.solve(lower.apply(raw), x))


def test_low_rank_products_never_form_the_matrix(monkeypatch):
    """LoRA's product and a low-rank layer touch only the thin factors."""

    def refuse(self):
        raise AssertionError("the dense matrix was formed")

    monkeypatch.setattr(ops.LowRank, "dense", refuse)
    s = fs.LowRank(2)
    raw = _raw(s, (64, 48))
    x = torch.randn(5, 48, dtype=F64)
    torch.testing.assert_close(linalg.linear(x, s, raw), x @ (raw[0] @ raw[1].mT).mT)
    lora = fs.Sum(fs.Frozen(), fs.LowRank(2))
    weight = torch.randn(64, 48, dtype=F64)
    raw = (weight, raw)
    torch.testing.assert_close(
        linalg.linear(x, lora, raw), x @ (weight + raw[1][0] @ raw[1][1].mT).mT
    )


@pytest.mark.parametrize("n", [1, 2, 5, 8])
def test_circulant_determinant_sign_for_odd_and_even_sizes(n):
    gen = torch.Generator().manual_seed(n)
    row = torch.randn(64, n, generator=gen, dtype=F64)
    s = fs.Circulant(packed=True)
    sign, log = linalg.slogdet(s, row)
    want_sign, want_log = torch.linalg.slogdet(s.apply(row))
    torch.testing.assert_close(sign, want_sign)
    torch.testing.assert_close(log, want_log)


def test_kronecker_rules_use_the_factors():
    s = fs.Kronecker(
        fs.PositiveDefinite(), fs.Orthogonal(), fs.Diagonal(packed=False), sizes=(3, 2, 2)
    )
    raw = _raw(s, (2, 12, 12))
    a = s.apply(raw)
    b = torch.randn(2, 12, 3, dtype=F64)
    torch.testing.assert_close(linalg.solve(s, raw, b), torch.linalg.solve(a, b))
    torch.testing.assert_close(linalg.slogdet(s, raw), tuple(torch.linalg.slogdet(a)))
    torch.testing.assert_close(linalg.inv(s, raw), torch.linalg.inv(a))
    torch.testing.assert_close(linalg.matmul(s, raw, b), a @ b)
    torch.testing.assert_close(linalg.diagonal(s, raw), a.diagonal(dim1=-2, dim2=-1))


# ------------------------------------------------------------------ singular and non-finite
@pytest.mark.parametrize("structure", [fs.LowRank(2), fs.PositiveSemidefinite(rank=2)], ids=repr)
def test_singular_by_construction_gives_nan_never_a_finite_answer(structure):
    raw = _raw(structure, (3, 5, 5))
    b = torch.randn(5, dtype=F64)
    assert bool(torch.isnan(linalg.solve(structure, raw, b)).all())
    assert bool(torch.isnan(linalg.inv(structure, raw)).all())
    sign, log = linalg.slogdet(structure, raw)
    assert bool((sign == 0).all())
    assert bool((log == -torch.inf).all())
    under_vmap = vmap(lambda r: linalg.solve(structure, r, b))(raw)
    assert bool(torch.isnan(under_vmap).all())


def test_exactly_singular_dense_member_gives_nan():
    s = fs.Symmetric()
    raw = torch.stack([torch.ones(3, 3, dtype=F64), torch.eye(3, dtype=F64)])
    x = linalg.solve(s, raw, torch.ones(3, dtype=F64))
    assert bool(torch.isnan(x[0]).all())
    assert bool(torch.isfinite(x[1]).all())


def test_zero_on_the_diagonal_divides_as_the_division_does():
    """Documented: inf/NaN in the components the zero divides, the others exact."""
    s = fs.Diagonal(packed=True)
    x = linalg.solve(s, torch.tensor([0.0, 2.0], dtype=F64), torch.ones(2, dtype=F64))
    assert x[0] == torch.inf
    assert x[1] == 0.5


@pytest.mark.parametrize("dtype", [torch.float32, F64], ids=["float32", "float64"])
@pytest.mark.parametrize("small", [-17.0, -20.0, -28.0])
def test_woodbury_with_a_small_diagonal_entry_stays_exact(small, dtype):
    """A member of condition number 8 whose diagonal has an entry far below F Fᵀ: the identity
    cancels two terms of size 1 / d, so it runs in float64 (float32 gave 450% errors)."""
    cov = (fs.PositiveSemidefinite(rank=1), fs.Chain(fs.Positive(), fs.Diagonal(packed=True)))
    raw = (torch.ones(2, 1, dtype=dtype), torch.tensor([small, 0.0], dtype=dtype))
    a = _dense(cov, tuple(t.double() for t in raw))
    b = torch.tensor([1.0, 0.0], dtype=dtype)
    # Documented accuracy: about eps(float64) times max |F_i|² / d_i, at least the dtype's.
    growth = 1 / torch.nn.functional.softplus(torch.tensor(small, dtype=F64)).item()
    tol = max(1e-5 if dtype == torch.float32 else 1e-9, 10 * 2.2e-16 * growth)
    torch.testing.assert_close(
        linalg.solve(cov, raw, b).double(), torch.linalg.solve(a, b.double()), rtol=tol, atol=tol
    )
    torch.testing.assert_close(
        linalg.logdet(cov, raw).double(), torch.logdet(a), rtol=tol, atol=tol
    )


@pytest.mark.parametrize(
    "diagonal", [[-40.0, 0.0], [float("-inf"), 0.0]], ids=["below-resolution", "zero"]
)
def test_woodbury_refuses_what_it_cannot_resolve(diagonal):
    """Below the identity's resolution (or with a zero in D) the answer is NaN, not wrong."""
    cov = (fs.PositiveSemidefinite(rank=1), fs.Diagonal(packed=True))
    d = torch.nn.functional.softplus(torch.tensor(diagonal, dtype=F64))
    raw = (torch.ones(2, 1, dtype=F64), d)
    assert bool(torch.isnan(linalg.solve(cov, raw, torch.ones(2, dtype=F64))).all())
    assert bool(torch.isnan(linalg.slogdet(cov, raw)[1]))


def test_a_positive_part_with_a_negative_minimum_is_not_a_positive_diagonal():
    """Chain(Positive(min=-1), Diagonal) may hold negative entries: no Cholesky rule for it."""
    cov = (
        fs.PositiveSemidefinite(rank=1),
        fs.Chain(fs.Positive(min=-1.0), fs.Diagonal(packed=True)),
    )
    d = fs.Positive(min=-1.0).inverse(torch.tensor([-0.5, 2.0], dtype=F64))
    raw = (torch.ones(2, 1, dtype=F64), d)
    a = _dense(cov, raw)
    torch.testing.assert_close(
        linalg.solve(cov, raw, torch.ones(2, dtype=F64)),
        torch.linalg.solve(a, torch.ones(2, dtype=F64)),
    )
    torch.testing.assert_close(linalg.slogdet(cov, raw), tuple(torch.linalg.slogdet(a)))


def test_kronecker_of_rectangular_factors_is_solved_densely():
    """Square overall but not factor by factor: (2 x 3) ⊗ (3 x 2) is singular here."""
    s = fs.Kronecker(fs.Diagonal(), fs.Diagonal(), sizes=((2, 3), (3, 2)))
    raw = s.init((6, 6), generator=torch.Generator().manual_seed(0), dtype=F64)
    sign, log = linalg.slogdet(s, raw)
    assert sign == 0
    assert log == -torch.inf
    assert "rectangular factors" in linalg.method(s, "solve", (6, 6))


@pytest.mark.parametrize(
    "structure",
    [
        fs.Circulant(packed=True),
        fs.Toeplitz(packed=True),
        fs.Hankel(),
        fs.Kronecker(fs.Diagonal(), fs.Symmetric(), sizes=(2, 2)),
    ],
    ids=repr,
)
def test_empty_batches_and_empty_right_hand_sides(structure):
    empty = structure.init((0, 4, 4))
    full = structure.init((4, 4))
    assert linalg.matmul(structure, empty, torch.ones(4, 2)).shape == (0, 4, 2)
    assert linalg.matmul(structure, full, torch.ones(4, 0)).shape == (4, 0)
    assert linalg.linear(torch.ones(0, 4), structure, full).shape == (0, 4)
    assert linalg.diagonal(structure, empty).shape == (0, 4)


def test_a_finite_raw_whose_sum_overflows_is_still_finite():
    x = linalg.solve(
        fs.Diagonal(packed=True), torch.tensor([1e308, 1e308], dtype=F64), torch.ones(2, dtype=F64)
    )
    torch.testing.assert_close(x, torch.full((2,), 1e-308, dtype=F64))


def test_non_finite_raw_gives_nan_for_its_batch_element_only():
    raw = list(_covariance_raw((3,)))
    raw[0] = raw[0].clone()
    raw[0][1, 0, 0] = torch.inf
    raw = tuple(raw)
    b = torch.randn(12, dtype=F64)
    for out in (
        linalg.solve(LOW_RANK_PLUS_DIAGONAL, raw, b),
        linalg.matmul(LOW_RANK_PLUS_DIAGONAL, raw, b),
        linalg.logdet(LOW_RANK_PLUS_DIAGONAL, raw),
        linalg.inv_quad_logdet(LOW_RANK_PLUS_DIAGONAL, raw, b)[0],
    ):
        assert bool(torch.isnan(out[1]).all())
        assert bool(torch.isfinite(out[0]).all())
        assert bool(torch.isfinite(out[2]).all())


# ---------------------------------------------------------------------------- transforms
TRANSFORM_CASES = [
    pytest.param(LOW_RANK_PLUS_DIAGONAL, None, id="woodbury"),
    pytest.param(fs.PositiveDefinite(), (6, 6), id="cholesky"),
    pytest.param(fs.Symmetric(), (6, 6), id="dense-lu"),
    pytest.param(fs.Circulant(packed=True), (6, 6), id="circulant"),
    pytest.param(fs.Orthogonal(), (6, 6), id="orthogonal"),
    pytest.param(fs.CholeskyFactor(), (6, 6), id="triangular"),
    pytest.param(fs.BlockDiagonal((2, 4)), (6, 6), id="block-diagonal"),
    pytest.param(fs.Toeplitz(packed=True), (6, 6), id="toeplitz"),
    pytest.param(
        fs.Kronecker(fs.PositiveDefinite(), fs.PositiveDefinite(), sizes=(2, 3)),
        (6, 6),
        id="kronecker",
    ),
]


def _take(raw, i):
    return tuple(_take(t, i) for t in raw) if isinstance(raw, tuple) else raw[i]


def _transform_raw(structure, shape, batch):
    if shape is None:
        return _covariance_raw((batch,), n=6)
    raw = _raw(structure, (batch, *shape))
    if isinstance(structure, (fs.Symmetric, fs.BlockDiagonal)):  # positive determinant
        raw = raw + 4 * torch.eye(6, dtype=F64)
    if isinstance(structure, fs.Toeplitz):  # the main diagonal dominates
        raw = raw + 6 * (torch.arange(11) == 5).to(F64)
    if isinstance(structure, fs.Circulant):
        raw = raw + torch.tensor([6.0, 0, 0, 0, 0, 0], dtype=F64)
    return raw


@pytest.mark.parametrize(("structure", "shape"), TRANSFORM_CASES)
def test_vmap_jacfwd_equals_a_loop(structure, shape):
    """torch 2.13's vmap(jacfwd) of solve, slogdet and lu_solve is wrong; the rules' is not."""
    raw = _transform_raw(structure, shape, 3)
    b = torch.randn(3, 6, dtype=F64)

    def nll(r, x):
        quad, logdet = linalg.inv_quad_logdet(structure, r, x)
        return quad + logdet + linalg.solve(structure, r, x).sum()

    batched = vmap(jacfwd(nll))(raw, b)
    looped = [jacfwd(nll)(_take(raw, i), b[i]) for i in range(3)]
    for i in range(3):
        for got, want in zip(testing._leaves(batched), testing._leaves(looped[i]), strict=True):
            torch.testing.assert_close(got[i], want)


@pytest.mark.parametrize(("structure", "shape"), TRANSFORM_CASES)
def test_jacfwd_equals_jacrev(structure, shape):
    """Forward mode against reverse mode (torch 2.13's cholesky_inverse jvp is wrong)."""
    raw = _take(_transform_raw(structure, shape, 1), 0)
    b = torch.randn(6, dtype=F64)
    for f in (
        lambda r: linalg.inv(structure, r).sum(),
        lambda r: linalg.solve(structure, r, b).sum(),
        lambda r: sum(linalg.inv_quad_logdet(structure, r, b)),
    ):
        for g, w in zip(
            testing._leaves(jacfwd(f)(raw)), testing._leaves(torch.func.jacrev(f)(raw)), strict=True
        ):
            torch.testing.assert_close(g, w)


@pytest.mark.parametrize(("structure", "shape"), TRANSFORM_CASES)
def test_vmap_grad_equals_the_dense_path(structure, shape):
    raw = _transform_raw(structure, shape, 3)
    b = torch.randn(3, 6, dtype=F64)

    def rules(r, x):
        quad, logdet = linalg.inv_quad_logdet(structure, r, x)
        return quad + logdet

    def dense(r, x):
        a = _dense(structure, r)
        return (x * torch.linalg.solve(a, x)).sum() + torch.logdet(a)

    got = vmap(grad(rules))(raw, b)
    want = vmap(grad(dense))(raw, b)
    for g, w in zip(testing._leaves(got), testing._leaves(want), strict=True):
        torch.testing.assert_close(g, w)


@pytest.mark.parametrize(("structure", "shape"), TRANSFORM_CASES[:4])
@pytest.mark.parametrize("dynamic", [False, True], ids=["static", "dynamic"])
def test_compile_fullgraph(structure, shape, dynamic):
    torch._dynamo.reset()  # each case compiles the same code object anew

    def step(r, x):
        quad, logdet = linalg.inv_quad_logdet(structure, r, x)
        return (quad + logdet).sum() + linalg.matmul(structure, r, x.unsqueeze(-1)).sum()

    compiled = torch.compile(grad(step), fullgraph=True, dynamic=dynamic)
    for batch in (3, 4):
        raw = _transform_raw(structure, shape, batch)
        b = torch.randn(batch, 6, dtype=F64)
        for g, w in zip(
            testing._leaves(compiled(raw, b)), testing._leaves(grad(step)(raw, b)), strict=True
        ):
            torch.testing.assert_close(g, w)


# ------------------------------------------------------------------------------ the law
class _WrongDiagonal(fs.Diagonal):
    """A broken rule: its operator forgets the last diagonal entry."""

    def _operator(self, raw):
        d = raw if self.packed else raw.diagonal(dim1=-2, dim2=-1)
        return ops.Diagonal(torch.cat([d[..., :-1], torch.ones_like(d[..., -1:])], -1))


def test_the_law_catches_a_wrong_rule():
    import dataclasses

    broken = dataclasses.dataclass(frozen=True)(_WrongDiagonal)(packed=True)
    assert "linalg" in testing.laws_for(broken)
    raw = torch.randn(3, 4, dtype=F64) + 3
    with pytest.raises(testing.LawError, match="linalg"):
        testing.check_linalg(broken, raw, broken.apply(raw))
    with pytest.raises(testing.LawError, match="linalg"):
        testing.check_laws(broken, (4, 4), laws=("linalg",))
    testing.check_laws(fs.Diagonal(packed=True), (4, 4), laws=("linalg",))


# ------------------------------------------------------------------------- bad arguments
def test_bad_arguments_name_the_function_the_structure_and_what_came():
    s = fs.PositiveDefinite()
    raw = _raw(s, (4, 4))
    with pytest.raises(ValueError, match=r"fs.linalg.solve\(PositiveDefinite.*b needs 4 rows"):
        linalg.solve(s, raw, torch.ones(3, dtype=F64))
    with pytest.raises(
        TypeError, match=r"b must have the raw's dtype torch.float64, got torch.float32"
    ):
        linalg.solve(s, raw, torch.ones(4))
    with pytest.raises(TypeError, match="expected a structure"):
        linalg.solve("PositiveDefinite", raw, torch.ones(4, dtype=F64))
    with pytest.raises(ValueError, match=r"needs square matrices, got 4 x 3"):
        linalg.solve(fs.LowRank(1), _raw(fs.LowRank(1), (4, 3)), torch.ones(4, dtype=F64))
    with pytest.raises(ValueError, match=r"PositiveDefinite.*linalg.logdet"):
        linalg.logdet(s, torch.ones(4, 3, dtype=F64))
    with pytest.raises(TypeError, match="needs a tuple of 2 raws"):
        linalg.logdet(LOW_RANK_PLUS_DIAGONAL, raw)
    with pytest.raises(TypeError, match="the raws must have one dtype"):
        linalg.logdet(LOW_RANK_PLUS_DIAGONAL, (torch.ones(4, 3, dtype=F64), torch.ones(4, 4)))
    with pytest.raises(ValueError, match="batch shapes do not broadcast"):
        linalg.logdet(
            LOW_RANK_PLUS_DIAGONAL[:1] + (fs.Diagonal(packed=True),),
            (torch.ones(3, 4, 3, dtype=F64), torch.ones(2, 4, dtype=F64)),
        )
    with pytest.raises(ValueError, match="x needs 4 features"):
        linalg.linear(torch.ones(2, 3, dtype=F64), s, raw)
    with pytest.raises(ValueError, match="no function 'solv'"):
        linalg.method(s, "solv")
