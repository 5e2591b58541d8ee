"""The bad-input catalogue: one case per row, each a clear ValueError/TypeError that names the
structure (and the tree path, through a tree), what was expected and what came; none modifies
its inputs."""

import math
import re

import pytest
import torch

import functional_struct as fs

M = torch.ones(3, 3)
TREE = fs.structure({"enc.weight": fs.Orthogonal()})

# (id, call, exception, regex fragments the message must contain)
CASES = [
    (
        "vector where a matrix is needed",
        lambda: fs.UpperTriangular().apply(torch.ones(3)),
        ValueError,
        ["UpperTriangular", "needs a matrix in its last 2 dims", r"got shape \(3,\)"],
    ),
    (
        "scalar where a vector is needed",
        lambda: fs.Simplex().apply(torch.tensor(1.0)),
        ValueError,
        ["Simplex", "needs a vector", r"got shape \(\)"],
    ),
    (
        "non-square for PositiveDefinite",
        lambda: fs.PositiveDefinite().apply(torch.ones(2, 3)),
        ValueError,
        ["PositiveDefinite", "square", r"got shape \(2, 3\)"],
    ),
    (
        "wide for Orthogonal",
        lambda: fs.Orthogonal().inverse(torch.ones(2, 4)),
        ValueError,
        ["Orthogonal", "rows >= columns", r"\(2, 4\)"],
    ),
    (
        "rectangle the wrong way for Symmetric",
        lambda: fs.Symmetric().project(torch.ones(3, 2)),
        ValueError,
        ["Symmetric", "square", r"\(3, 2\)"],
    ),
    (
        "packed form needs a square value",
        lambda: fs.Toeplitz(packed=True).inverse(torch.ones(2, 3)),
        ValueError,
        ["Toeplitz", "packed forms are square", r"\(2, 3\)"],
    ),
    (
        "wrong shape for a fixed mask",
        lambda: fs.Masked([[True, False]]).apply(M),
        ValueError,
        ["Masked", r"shape \(1, 2\)", r"got shape \(3, 3\)"],
    ),
    (
        "wrong size for BlockDiagonal",
        lambda: fs.BlockDiagonal((1, 1)).apply(M),
        ValueError,
        ["BlockDiagonal", r"\(2, 2\)", r"\(3, 3\)"],
    ),
    (
        "int64 tensor",
        lambda: fs.Diagonal().apply(torch.ones(3, 3, dtype=torch.int64)),
        TypeError,
        ["Diagonal", "dtype", "got int64"],
    ),
    (
        "bool tensor",
        lambda: fs.UpperTriangular().contains(torch.ones(3, 3, dtype=torch.bool)),
        TypeError,
        ["UpperTriangular", "got bool"],
    ),
    (
        "complex tensor where real ones belong",
        lambda: fs.PositiveDefinite().apply(torch.ones(3, 3, dtype=torch.complex64)),
        TypeError,
        ["PositiveDefinite", "got complex64", "float32 or float64"],
    ),
    (
        "real tensor where complex ones belong",
        lambda: fs.Unitary().apply(torch.ones(3, 3)),
        TypeError,
        ["Unitary", "got float32", "complex64 or complex128"],
    ),
    (
        "float16 for a linear-algebra structure",
        lambda: fs.PositiveDefinite().apply(torch.ones(3, 3, dtype=torch.float16)),
        TypeError,
        ["PositiveDefinite", "float32 or float64", "got float16"],
    ),
    (
        "bfloat16 for Orthogonal",
        lambda: fs.Orthogonal().apply(M.bfloat16()),
        TypeError,
        ["Orthogonal", "got bfloat16"],
    ),
    (
        "a list instead of a tensor",
        lambda: fs.Diagonal().apply([[1.0]]),
        TypeError,
        ["Diagonal", "must be a torch.Tensor", "got list"],
    ),
    (
        "a numpy-free Python float",
        lambda: fs.Positive().apply(1.0),
        TypeError,
        ["Positive", "got float"],
    ),
    (
        "init with too few dims",
        lambda: fs.Orthogonal().init((3,)),
        ValueError,
        [r"Orthogonal\(.*\)\.init", r"got shape \(3,\)"],
    ),
    (
        "init with an integer dtype",
        lambda: fs.Diagonal().init((2, 2), dtype=torch.int32),
        TypeError,
        ["Diagonal", "got int32"],
    ),
    (
        "packed vector of an impossible length",
        lambda: fs.UpperTriangular(packed=True).apply(torch.ones(4)),
        ValueError,
        ["UpperTriangular", r"n\(n\+1\)/2", "4 fits no n"],
    ),
    (
        "packed skew vector of an impossible length",
        lambda: fs.SkewSymmetric(packed=True).apply(torch.ones(2)),
        ValueError,
        ["SkewSymmetric", r"n\(n-1\)/2", "2 fits no n"],
    ),
    (
        "spec key that matches nothing",
        lambda: TREE.apply({"enc.wieght": M}),
        ValueError,
        ["'enc.weight'", "matched no entry", "'enc.wieght'"],
    ),
    (
        "tree leaf of the wrong shape",
        lambda: TREE.apply({"enc.weight": torch.ones(3, 4)}),
        ValueError,
        ["leaf 'enc.weight'", "Orthogonal", "square", r"\(3, 4\)"],
    ),
    (
        "tree leaf of the wrong dtype",
        lambda: TREE.apply({"enc.weight": M.long()}),
        TypeError,
        ["leaf 'enc.weight'", "got int64"],
    ),
    (
        "None where the spec wants a tensor",
        lambda: TREE.apply({"enc.weight": None}),
        TypeError,
        ["leaf 'enc.weight'", "needs a tensor", "got NoneType"],
    ),
    (
        "a string leaf under a structure",
        lambda: fs.structure(fs.Diagonal()).apply({"w": "weights"}),
        TypeError,
        ["leaf 'w'", "needs a tensor", "got str"],
    ),
    (
        "spec leaf that is not a structure",
        lambda: fs.structure({"w": torch.nn.Linear(2, 2)}),
        TypeError,
        ["spec entry 'w'", "must be a structure", "got Linear"],
    ),
    (
        "spec that is a string",
        lambda: fs.structure("Orthogonal"),
        TypeError,
        ["fs.structure: spec must be a structure", "got str"],
    ),
    (
        "spec key that is not a string",
        lambda: fs.structure({1.5: fs.Diagonal()}),
        TypeError,
        ["spec keys must be non-empty strings or ints", "1.5"],
    ),
    (
        "two patterns disagreeing on a leaf",
        lambda: fs.structure({"*.weight": fs.Diagonal(), "enc.*": fs.Symmetric()}).apply(
            {"enc.weight": M}
        ),
        ValueError,
        ["'enc.weight' is matched by the patterns", "add an exact key"],
    ),
    (
        "Banded(-1, 0)",
        lambda: fs.Banded(-1, 0),
        ValueError,
        ["Banded: lower must be an int >= 0, got -1"],
    ),
    (
        "Bounded(2, 1)",
        lambda: fs.Bounded(2, 1),
        ValueError,
        ["Bounded: high must be a finite float > low = 2, got 1"],
    ),
    (
        "Bounded with NaN",
        lambda: fs.Bounded(float("nan"), 1),
        ValueError,
        ["Bounded: low must be a finite float, got nan"],
    ),
    (
        "UpperTriangular(diagonal=0.5)",
        lambda: fs.UpperTriangular(0.5),
        TypeError,
        ["UpperTriangular: diagonal must be an int, got float 0.5"],
    ),
    (
        "PositiveDefinite(floor=0)",
        lambda: fs.PositiveDefinite(floor=0),
        ValueError,
        ["PositiveDefinite: floor must be a finite float > 0, got 0"],
    ),
    (
        "Orthogonal(method='qr')",
        lambda: fs.Orthogonal(method="qr"),
        ValueError,
        ["Orthogonal: method must be one of 'cayley', 'expm', 'householder', got 'qr'"],
    ),
    (
        "DoublyStochastic(iterations=0)",
        lambda: fs.DoublyStochastic(iterations=0),
        ValueError,
        ["DoublyStochastic: iterations must be an int >= 1, got 0"],
    ),
    (
        "Simplex(dim=0)",
        lambda: fs.Simplex(dim=0),
        ValueError,
        ["Simplex: dim must be a negative int", "got 0"],
    ),
    (
        "Chain of a module",
        lambda: fs.Chain(fs.Positive(), torch.nn.ReLU()),
        TypeError,
        [r"Chain: structures\[1\] must be a structure", r"got ReLU ReLU\(\)"],
    ),
    (
        "LowRank rank above the shape",
        lambda: fs.LowRank(4).apply((torch.zeros(3, 4), torch.zeros(5, 4))),
        ValueError,
        ["LowRank", "rank 4 > min", r"left \(3, 4\), right \(5, 4\)"],
    ),
    (
        "LowRank given one tensor",
        lambda: fs.LowRank(1).apply(torch.zeros(3, 3)),
        TypeError,
        ["LowRank", r"raw must be a tuple \(left, right\), got Tensor"],
    ),
    (
        "FixedRank singular of the wrong length",
        lambda: fs.FixedRank(2).apply((torch.zeros(4, 2), torch.zeros(3), torch.zeros(3, 2))),
        ValueError,
        ["FixedRank", "part 'singular' needs shape", r"singular \(3,\)"],
    ),
    (
        "Invertible floor=True",
        lambda: fs.Invertible(floor=True),
        TypeError,
        ["Invertible: floor must be a finite float > 0, got bool True"],
    ),
    (
        "SpecialLinear parts of two shapes",
        lambda: fs.SpecialLinear().apply((torch.zeros(3, 3), torch.zeros(4, 4))),
        ValueError,
        ["SpecialLinear", "two square matrices of the same shape"],
    ),
    (
        "PositiveSemidefinite factor of the wrong rank",
        lambda: fs.PositiveSemidefinite(rank=2).apply(torch.zeros(4, 3)),
        ValueError,
        ["PositiveSemidefinite", r"n x 2 factor", r"\(4, 3\)"],
    ),
    (
        "PositiveDefinite(method='qr')",
        lambda: fs.PositiveDefinite(method="qr"),
        ValueError,
        ["PositiveDefinite: method must be one of 'cholesky', 'expm', got 'qr'"],
    ),
    (
        "BoundedSpectralNorm(max_norm=0)",
        lambda: fs.BoundedSpectralNorm(0),
        ValueError,
        ["BoundedSpectralNorm: max_norm must be a finite float > 0, got 0"],
    ),
    (
        "Sum with the wrong number of raws",
        lambda: fs.Sum(fs.Diagonal(), fs.Symmetric()).apply((torch.zeros(3, 3),)),
        TypeError,
        [r"Sum\(", "a tuple of 2 raws, one per part, got a tuple of 1"],
    ),
    (
        "tall expm",
        lambda: fs.Orthogonal(method="expm").apply(torch.zeros(5, 3)),
        ValueError,
        ["Orthogonal", "'expm' needs a square matrix", r"\(5, 3\)"],
    ),
    (
        "factored raw parts of two dtypes",
        lambda: fs.LowRank(1).apply((torch.ones(3, 1), torch.ones(3, 1, dtype=torch.float64))),
        TypeError,
        ["LowRank", "share one dtype", "left torch.float32, right torch.float64"],
    ),
    (
        "factored raw parts on two devices",
        lambda: fs.LowRank(1).apply((torch.ones(3, 1), torch.ones(3, 1, device="meta"))),
        ValueError,
        ["LowRank", "share one device", "left cpu, right meta"],
    ),
    (
        "init with a negative size",
        lambda: fs.Diagonal().init((-1, 3, 3)),
        ValueError,
        [r"Diagonal\(", "sizes >= 0", r"got shape \(-1, 3, 3\)"],
    ),
    (
        "init with an int for a shape",
        lambda: fs.Orthogonal().init(3),
        TypeError,
        [r"Orthogonal\(", "tuple of ints", "got int: 3"],
    ),
    (
        "tree init with an int batch_shape",
        lambda: TREE.init({"enc.weight": M}, batch_shape=3),
        TypeError,
        ["batch_shape must be a tuple of ints", "got int: 3"],
    ),
    (
        "contains with a string tolerance",
        lambda: fs.Diagonal().contains(M, atol="x"),
        TypeError,
        [r"Diagonal\(", "atol must be a float >= 0", "got str 'x'"],
    ),
    (
        "contains with a negative tolerance",
        lambda: fs.Diagonal().contains(M, rtol=-1),
        ValueError,
        [r"Diagonal\(", "rtol must be a float >= 0", "got -1"],
    ),
    (
        "0 x 0 matrix",
        lambda: fs.Orthogonal().project(torch.ones(2, 0, 0)),
        ValueError,
        [r"Orthogonal\(", "size >= 1", r"got shape \(2, 0, 0\)"],
    ),
    (
        "0 x 0 raw",
        lambda: fs.PositiveDefinite().apply(torch.ones(0, 0)),
        ValueError,
        [r"PositiveDefinite\(", "size >= 1", r"got shape \(0, 0\)"],
    ),
    (
        "packed value with no free entries, ambiguous n",
        lambda: fs.UpperTriangular(diagonal=2, packed=True).init((4, 2, 2)),
        ValueError,
        ["UpperTriangular", "no free entries", "packed=False", r"got shape \(4, 2, 2\)"],
    ),
    (
        "empty packed raw that fits several n",
        lambda: fs.UpperTriangular(diagonal=2, packed=True).apply(torch.ones(4, 0)),
        ValueError,
        ["UpperTriangular", "fits several n", r"got shape \(4, 0\)"],
    ),
    (
        "PositiveDefinite floor=True",
        lambda: fs.PositiveDefinite(floor=True),
        TypeError,
        ["PositiveDefinite: floor must be a finite float > 0, got bool True"],
    ),
    (
        "CholeskyFactor of a wide matrix",
        lambda: fs.CholeskyFactor().apply(torch.ones(2, 3)),
        ValueError,
        ["CholeskyFactor", "square", r"got shape \(2, 3\)"],
    ),
    (
        "Circulant packed raw of int32",
        lambda: fs.Circulant(packed=True).apply(torch.ones(3, dtype=torch.int32)),
        TypeError,
        ["Circulant", "got int32"],
    ),
    (
        "Correlation of a vector",
        lambda: fs.Correlation().project(torch.ones(3)),
        ValueError,
        ["Correlation", "needs a matrix", r"got shape \(3,\)"],
    ),
    (
        "Frozen of a list",
        lambda: fs.Frozen().apply([1.0, 2.0]),
        TypeError,
        ["Frozen", "must be a torch.Tensor, got list"],
    ),
    (
        "Hankel packed raw of a length that fits no n",
        lambda: fs.Hankel(packed=True).apply(torch.ones(4)),
        ValueError,
        ["Hankel", "is packed", "4 fits no n"],
    ),
    (
        "Orthogonal of a complex tensor (Unitary is the complex one)",
        lambda: fs.Orthogonal().inverse(torch.ones(2, 2, dtype=torch.complex64)),
        TypeError,
        ["Orthogonal", "got complex64"],
    ),
    (
        "LowerTriangular of an integer tensor",
        lambda: fs.LowerTriangular().inverse(torch.ones(2, 2, dtype=torch.int32)),
        TypeError,
        ["LowerTriangular", "got int32"],
    ),
    (
        "Unitary of a wide matrix",
        lambda: fs.Unitary().apply(torch.ones(2, 3, dtype=torch.complex64)),
        ValueError,
        ["Unitary", "square or tall", r"got shape \(2, 3\)"],
    ),
    (
        "SpecialUnitary of a real tensor",
        lambda: fs.SpecialUnitary().contains(torch.eye(2)),
        TypeError,
        ["SpecialUnitary", "complex64 or complex128", "got float32"],
    ),
    (
        "Hermitian packed raw of a length that fits no n",
        lambda: fs.Hermitian(packed=True).apply(torch.ones(4, dtype=torch.complex64)),
        ValueError,
        ["Hermitian", "4 fits no n"],
    ),
    (
        "SkewHermitian of a non-square matrix",
        lambda: fs.SkewHermitian().project(torch.ones(2, 3, dtype=torch.complex64)),
        ValueError,
        ["SkewHermitian", "square", r"got shape \(2, 3\)"],
    ),
    (
        "HermitianPositiveDefinite with the exponential method",
        lambda: fs.HermitianPositiveDefinite(method="expm"),
        ValueError,
        ["HermitianPositiveDefinite", "method", "expm"],
    ),
    (
        "DensityMatrix factor with the wrong number of columns",
        lambda: fs.DensityMatrix(rank=2).apply(torch.ones(3, 3, dtype=torch.complex64)),
        ValueError,
        ["DensityMatrix", "2 columns", r"\(3, 3\)"],
    ),
    (
        "SpecialOrthogonal of float16",
        lambda: fs.SpecialOrthogonal().apply(torch.ones(2, 2, dtype=torch.float16)),
        TypeError,
        ["SpecialOrthogonal", "float32 or float64", "got float16"],
    ),
    (
        "UnitNorm of a scalar",
        lambda: fs.UnitNorm().apply(torch.tensor(1.0)),
        ValueError,
        ["UnitNorm", "needs a vector", r"got shape \(\)"],
    ),
    (
        "Sum raws of two dtypes",
        lambda: fs.Sum(fs.Symmetric(), fs.SkewSymmetric()).apply(
            (torch.ones(2, 2), torch.zeros(2, 2, dtype=torch.float64))
        ),
        TypeError,
        [r"Sum\(", "share one dtype", "torch.float32, torch.float64"],
    ),
    (
        "BoundedSpectralNorm max_norm=True",
        lambda: fs.BoundedSpectralNorm(max_norm=True),
        TypeError,
        ["BoundedSpectralNorm: max_norm must be a finite float > 0, got bool True"],
    ),
    (
        "Chain after a structure whose inverse is NaN outside",
        lambda: fs.Chain(fs.Orthogonal(), fs.Positive()),
        ValueError,
        [r"Chain: structures\[1\] \(Positive", "follows Orthogonal", "inverse_outside = 'project'"],
    ),
    (
        "DoublyStochastic tolerance=True",
        lambda: fs.DoublyStochastic(tolerance=True),
        TypeError,
        ["DoublyStochastic: tolerance must be a finite float >= 0, got bool True"],
    ),
    (
        "LowRank with a float rank",
        lambda: fs.LowRank(2.0),
        TypeError,
        ["LowRank: rank must be an int >= 1, got float 2.0"],
    ),
    (
        "Simplex with a string dim",
        lambda: fs.Simplex(dim="-1"),
        TypeError,
        ["Simplex: dim must be a negative int", "got str '-1'"],
    ),
    (
        "Symmetric with packed=1",
        lambda: fs.Symmetric(packed=1),
        TypeError,
        ["Symmetric: packed must be a bool, got int 1"],
    ),
    (
        "Correlation with a tensor floor",
        lambda: fs.Correlation(floor=torch.tensor(0.1)),
        TypeError,
        [r"Correlation: floor must be a float in \(0, 1\), got Tensor tensor\(0.1000\)"],
    ),
    (
        "Kronecker with a raw for other factor sizes",
        lambda: fs.Kronecker(fs.PositiveDefinite(), fs.Diagonal(), sizes=(2, 3)).apply(
            (torch.zeros(3, 3), torch.zeros(3, 3))
        ),
        ValueError,
        [r"Kronecker\(PositiveDefinite", r"factor 0 \(PositiveDefinite", "2 x 2 member"],
    ),
    (
        "Kronecker with a vector factor",
        lambda: fs.Kronecker(fs.Simplex(), fs.Diagonal(), sizes=(2, 3)),
        ValueError,
        [r"Kronecker: factors\[0\] must be a matrix structure \(core_ndim 2\)"],
    ),
    (
        "as_parametrization of a tree",
        lambda: fs.as_parametrization(TREE),
        TypeError,
        ["as_parametrization: needs a leaf structure", "got StructureTree"],
    ),
]


def test_every_public_structure_has_a_catalogued_case():
    """Each exported structure class is named by at least one case's expected message."""
    import inspect

    names = [
        name
        for name in fs.__all__
        if inspect.isclass(getattr(fs, name))
        and issubclass(getattr(fs, name), fs.AbstractStructure)
        and not name.startswith("Abstract")
    ]
    covered = {name for name in names for case in CASES if any(name in f for f in case[3])}
    assert sorted(set(names) - covered) == []


@pytest.mark.parametrize(
    ("call", "error", "fragments"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_input_gets_a_clear_error(call, error, fragments):
    with pytest.raises(error) as info:
        call()
    assert type(info.value) is error  # plain ValueError/TypeError, never a torch error
    for fragment in fragments:
        assert re.search(fragment, str(info.value)), (fragment, str(info.value))


@pytest.mark.parametrize("method", ["apply", "inverse", "project", "contains"])
def test_errors_leave_inputs_untouched(method):
    x = torch.randn(3, 4)
    before = x.clone()
    with pytest.raises(ValueError, match="square"):
        getattr(fs.Orthogonal(), method)(x)
    assert torch.equal(x, before)


def test_inverse_of_a_non_member_is_documented_not_an_error():
    """inverse does not check membership (that needs a host sync, breaking vmap). Documented:
    masks and subspaces give the raw of the projection, PositiveDefinite and Orthogonal NaN where
    no raw exists; raw_from projects first and always gives a member."""
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    upper = fs.UpperTriangular()
    assert torch.equal(upper.apply(upper.inverse(x)), upper.project(x))
    indefinite = torch.diag(torch.tensor([1.0, -1.0]))
    assert torch.isnan(fs.PositiveDefinite().inverse(indefinite)).any()
    assert fs.PositiveDefinite().contains(
        fs.PositiveDefinite().apply(fs.PositiveDefinite().raw_from(indefinite))
    )


def test_factored_bad_input_names_the_part():
    with pytest.raises(ValueError, match=r"LowRank\(rank=2\).apply: raw parts need 2 columns"):
        fs.LowRank(2).apply((torch.zeros(4, 3), torch.zeros(5, 2)))
    with pytest.raises(TypeError, match=r"raw part 'right'.*int64"):
        fs.LowRank(2).apply((torch.zeros(4, 2), torch.zeros(5, 2, dtype=torch.long)))
    with pytest.raises(
        TypeError, match=r"Sum\(.*\).apply: raw part 0 must be a tuple \(left, right\)"
    ):
        fs.Sum(fs.LowRank(1), fs.Frozen()).apply((torch.zeros(3, 1), torch.zeros(3, 3)))
    with pytest.raises(ValueError, match=r"one shape, got \(3, 3\), \(4, 4\)"):
        fs.Sum(fs.LowRank(1), fs.Frozen()).apply(
            ((torch.zeros(3, 1), torch.zeros(3, 1)), torch.zeros(4, 4))
        )
    with pytest.raises(ValueError, match="rank 4 > min"):
        fs.LowRank(4).init((3, 5))
    with pytest.raises(ValueError, match="rank must be an int >= 1"):
        fs.LowRank(0)
    with pytest.raises(ValueError, match="max_norm must be a finite float > 0"):
        fs.BoundedSpectralNorm(-1.0)
    assert math.isfinite(fs.LowRank(1).apply((torch.ones(2, 1), torch.ones(2, 1))).sum())
