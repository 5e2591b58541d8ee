"""Operators: a member held in the form its structure gives it, and the rules that exploit it.

An :class:`Operator` is built from a raw by a structure's ``_operator`` hook (the ``"linalg"``
capability) and lives for one call of a :mod:`functional_struct.linalg` function: plain tensors
in, plain tensors out, so it is invisible to ``vmap``, ``grad`` and ``torch.compile``. Every
operator can give its dense matrix; the rules it overrides are the cheaper ways.

``factorize()`` returns a :class:`Factor`, which answers ``solve``, ``slogdet`` and ``inv`` from
one factorization: ``inv_quad_logdet`` uses one for both of its answers. Where a factorization
fails (an exactly singular matrix, a matrix that is not positive definite for a Cholesky rule)
the answers for that batch element are NaN, never an exception.

Every rule is free of host syncs and of Python branching on values. Dense solves use LU
(``lu_factor_ex``, then triangular solves), never ``linalg.solve``, ``slogdet`` or
``lu_solve``: in torch 2.13 ``vmap(jacfwd(...))`` of each of those returns wrong values with
no error (``lu_solve`` when the right-hand side has a tangent too), while the factorization
and triangular solves are right (pinned by ``tests/test_linalg.py``).
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable

import torch
from torch import Tensor

from .._kernels import abs_squared, eye_like


def _common_batch(matrix: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """``matrix`` and ``b`` expanded to one batch shape: ``solve_triangular`` does not broadcast."""
    batch = torch.broadcast_shapes(matrix.shape[:-2], b.shape[:-2])
    return matrix.expand(*batch, *matrix.shape[-2:]), b.expand(*batch, *b.shape[-2:])


def nan_unless(ok: Tensor, x: Tensor, core: int) -> Tensor:
    """``x`` with NaN wherever ``ok`` (``x``'s batch shape, before ``core`` dims) is False."""
    mask = ok.reshape((*ok.shape, *(1,) * core))
    return torch.where(mask, x, math.nan)


class Factor(abc.ABC):
    """One factorization of a square operator: solves, log-determinant and inverse."""

    @abc.abstractmethod
    def solve(self, b: Tensor) -> Tensor:
        """``A⁻¹ b`` for a batch of matrices ``b`` (``(..., n, k)``, batch dims broadcast)."""

    @abc.abstractmethod
    def slogdet(self) -> tuple[Tensor, Tensor]:
        """``(sign, log|det A|)`` as ``torch.linalg.slogdet`` gives them."""

    @abc.abstractmethod
    def inv(self) -> Tensor:
        """``A⁻¹``, ``(..., n, n)``."""

    def inv_quad(self, b: Tensor) -> Tensor:
        """``bᵀ A⁻¹ b`` for a batch of vectors ``b`` (``(..., n)``)."""
        return (b * self.solve(b.unsqueeze(-1)).squeeze(-1)).sum(-1)


class Operator(abc.ABC):
    """A matrix in a structured form. Subclasses override the rules they make cheaper.

    ``RULES`` maps a function name (``matmul``, ``solve``, ``logdet``, ``inv``, ``diagonal``,
    ``root``) to a short description of how the operator computes it, with its cost; the
    functions it does not list fall back to the dense matrix, as the base class describes.
    """

    RULES: dict[str, str] = {}
    DENSE_RULES: dict[str, str] = {
        "matmul": "dense: the matrix, then matmul, O(n m k)",
        "solve": "dense: LU (lu_factor_ex, triangular solves), O(n^3)",
        "logdet": "dense: LU, O(n^3)",
        "inv": "dense: LU, O(n^3)",
        "diagonal": "dense: the matrix's diagonal",
        "root": "dense: Cholesky, O(n^3); NaN unless symmetric positive definite",
    }

    @property
    @abc.abstractmethod
    def shape(self) -> tuple[int, int]:
        """``(rows, cols)`` of the matrix."""

    @abc.abstractmethod
    def dense(self) -> Tensor:
        """The matrix, ``(..., rows, cols)``."""

    def rule(self, name: str) -> str:
        """How this operator computes the function ``name``."""
        return self.RULES.get(name, self.DENSE_RULES[name])

    def matmul(self, x: Tensor) -> Tensor:
        """``A @ x`` for ``x`` of shape ``(..., cols, k)``."""
        return self.dense() @ x

    def diagonal(self) -> Tensor:
        """The main diagonal, ``(..., min(rows, cols))``."""
        return self.dense().diagonal(dim1=-2, dim2=-1)

    def factorize(self) -> Factor:
        """A factorization of the (square) matrix: LU unless the structure knows better."""
        return LU(self.dense())

    def root(self) -> Operator:
        """An operator ``R`` with ``R Rᵀ = A``: a Cholesky factor unless the structure knows better.

        NaN where ``A`` is not symmetric (to the rounding of its entries) or not positive
        definite; Cholesky reads one triangle only, so the symmetry is checked, not assumed.
        """
        matrix = self.dense()
        factor, info = torch.linalg.cholesky_ex(matrix)
        scale = matrix.abs().amax((-2, -1))
        eps = torch.finfo(matrix.dtype).eps
        symmetric = ((matrix - matrix.mT).abs().amax((-2, -1)) <= 64 * eps * scale) & (info == 0)
        return Triangular(nan_unless(symmetric, factor, 2), upper=False)


class Dense(Operator):
    """A matrix held as itself: every rule is the dense one, unless a subclass knows better."""

    def __init__(self, matrix: Tensor) -> None:
        self.matrix = matrix

    @property
    def shape(self) -> tuple[int, int]:  # noqa: D102 - documented on the base
        return self.matrix.shape[-2], self.matrix.shape[-1]

    def dense(self) -> Tensor:  # noqa: D102 - documented on the base
        return self.matrix


class LU(Factor):
    """LU with partial pivoting, ``A = P L U``; NaN solves where a pivot is exactly zero.

    Solves are ``U⁻¹ L⁻¹ Pᵀ b`` by two triangular solves, not ``lu_solve``: in torch 2.13
    ``vmap(jacfwd(...))`` of ``lu_solve`` is wrong when ``b`` has a tangent too.
    """

    def __init__(self, matrix: Tensor) -> None:
        self.lu, self.pivots, info = torch.linalg.lu_factor_ex(matrix)
        self.ok = info == 0

    def solve(self, b: Tensor) -> Tensor:  # noqa: D102 - documented on the base
        permutation, lower, upper = torch.lu_unpack(self.lu, self.pivots)
        lower, b = _common_batch(lower, permutation.mT @ b)
        upper, _ = _common_batch(upper, b)
        y = torch.linalg.solve_triangular(lower, b, upper=False, unitriangular=True)
        x = torch.linalg.solve_triangular(upper, y, upper=True)
        return nan_unless(self.ok, x, 2)

    def slogdet(self) -> tuple[Tensor, Tensor]:  # noqa: D102 - documented on the base
        diagonal = self.lu.diagonal(dim1=-2, dim2=-1)
        n = diagonal.shape[-1]
        moved = self.pivots != torch.arange(1, n + 1, device=self.pivots.device)
        parity = 1 - 2 * (moved.sum(-1) % 2)
        sign = torch.sgn(diagonal).prod(-1) * parity.to(diagonal.dtype)
        return sign, diagonal.abs().log().sum(-1)

    def inv(self) -> Tensor:  # noqa: D102 - documented on the base
        return self.solve(eye_like(self.lu))


class Diagonal(Operator, Factor):
    """A square diagonal matrix, held as its diagonal ``d`` (``(..., n)``).

    ``positive`` says every entry is positive by construction (a ``Chain(Positive(),
    Diagonal(...))``): Woodbury then factorizes its capacitance by Cholesky.
    """

    RULES = {
        "matmul": "diagonal: elementwise, O(n k)",
        "solve": "diagonal: elementwise, O(n k)",
        "logdet": "diagonal: sum of log|d|, O(n)",
        "inv": "diagonal: 1 / d on the diagonal of an n x n result",
        "diagonal": "diagonal: the stored diagonal",
        "root": "diagonal: sqrt(d), O(n); NaN where d < 0",
    }

    def __init__(self, d: Tensor, positive: bool = False) -> None:
        self.d = d
        self.positive = positive  # every entry > 0 by construction (rules may rely on it)

    @property
    def shape(self) -> tuple[int, int]:  # noqa: D102 - documented on the base
        return self.d.shape[-1], self.d.shape[-1]

    def dense(self) -> Tensor:  # noqa: D102 - documented on the base
        return torch.diag_embed(self.d)

    def matmul(self, x: Tensor) -> Tensor:  # noqa: D102 - documented on the base
        return self.d.unsqueeze(-1) * x

    def diagonal(self) -> Tensor:  # noqa: D102 - documented on the base
        return self.d

    def factorize(self) -> Factor:  # noqa: D102 - documented on the base
        return self

    def root(self) -> Operator:  # noqa: D102 - documented on the base
        return Diagonal(self.d.sqrt())

    def solve(self, b: Tensor) -> Tensor:  # noqa: D102 - documented on the base
        return b / self.d.unsqueeze(-1)

    def slogdet(self) -> tuple[Tensor, Tensor]:  # noqa: D102 - documented on the base
        return self.d.sign().prod(-1), self.d.abs().log().sum(-1)

    def inv(self) -> Tensor:  # noqa: D102 - documented on the base
        return torch.diag_embed(1 / self.d)


class Triangular(Dense, Factor):
    """A square triangular matrix: triangular solves, log-determinant from the diagonal."""

    RULES = {
        "solve": "triangular: solve_triangular, O(n^2 k)",
        "logdet": "triangular: sum of log|diagonal|, O(n)",
        "inv": "triangular: solve_triangular against I, O(n^3)",
    }

    def __init__(self, matrix: Tensor, upper: bool) -> None:
        super().__init__(matrix)
        self.upper = upper

    def factorize(self) -> Factor:  # noqa: D102 - documented on the base
        return self

    def solve(self, b: Tensor) -> Tensor:  # noqa: D102 - documented on the base
        matrix, b = _common_batch(self.matrix, b)
        return torch.linalg.solve_triangular(matrix, b, upper=self.upper)

    def slogdet(self) -> tuple[Tensor, Tensor]:  # noqa: D102 - documented on the base
        d = self.matrix.diagonal(dim1=-2, dim2=-1)
        return d.sign().prod(-1), d.abs().log().sum(-1)

    def inv(self) -> Tensor:  # noqa: D102 - documented on the base
        return self.solve(eye_like(self.matrix))


class Orthogonal(Dense, Factor):
    """A square orthogonal (or unitary) ``Q``, its determinant's sign (phase) from the chart."""

    RULES = {
        "solve": "orthogonal: Qᵀ b, O(n^2 k)",
        "logdet": "orthogonal: 0, sign from the chart, O(1)",
        "inv": "orthogonal: Qᵀ, O(n^2)",
    }

    def __init__(self, matrix: Tensor, sign: Tensor) -> None:
        super().__init__(matrix)
        self.sign = sign

    def factorize(self) -> Factor:  # noqa: D102 - documented on the base
        return self

    def solve(self, b: Tensor) -> Tensor:  # noqa: D102 - documented on the base
        return self.matrix.mH @ b

    def slogdet(self) -> tuple[Tensor, Tensor]:  # noqa: D102 - documented on the base
        # 0 * the entries' sum: exactly 0 for a finite member, NaN for a NaN one.
        zero = self.matrix.sum((-2, -1)) * 0
        return self.sign + zero, zero

    def inv(self) -> Tensor:  # noqa: D102 - documented on the base
        return self.matrix.mH


class PositiveDefinite(Dense):
    """A symmetric positive-definite matrix: one Cholesky factorization for every rule."""

    RULES = {
        "solve": "positive definite: Cholesky, two triangular solves, O(n^3)",
        "logdet": "positive definite: Cholesky, 2 sum log diag L, O(n^3)",
        "inv": "positive definite: Cholesky, triangular solves against I, O(n^3)",
        "root": "positive definite: the Cholesky factor, O(n^3)",
    }

    def factorize(self) -> Factor:  # noqa: D102 - documented on the base
        return Cholesky(self.matrix)

    def root(self) -> Operator:  # noqa: D102 - documented on the base
        chol = Cholesky(self.matrix)
        return Triangular(nan_unless(chol.ok, chol.factor, 2), upper=False)


class Cholesky(Factor):
    """``A = L Lᴴ``; NaN answers where the factorization fails.

    Solves are two triangular solves, not ``cholesky_solve`` or ``cholesky_inverse``: the
    latter's forward-mode derivative is wrong in torch 2.13.
    """

    def __init__(self, matrix: Tensor) -> None:
        self.factor, info = torch.linalg.cholesky_ex(matrix)
        self.ok = info == 0

    def solve(self, b: Tensor) -> Tensor:  # noqa: D102 - documented on the base
        factor, b = _common_batch(self.factor, b)
        y = torch.linalg.solve_triangular(factor, b, upper=False)
        return nan_unless(self.ok, torch.linalg.solve_triangular(factor.mH, y, upper=True), 2)

    def inv_quad(self, b: Tensor) -> Tensor:
        """``|L⁻¹ b|²``: one triangular solve."""
        factor, column = _common_batch(self.factor, b.unsqueeze(-1))
        white = torch.linalg.solve_triangular(factor, column, upper=False)
        return nan_unless(self.ok, abs_squared(white).sum((-2, -1)), 0)

    def slogdet(self) -> tuple[Tensor, Tensor]:  # noqa: D102 - documented on the base
        log = 2 * self.factor.real.diagonal(dim1=-2, dim2=-1).log().sum(-1)
        log = torch.where(self.ok, log, math.nan)
        return torch.where(self.ok, 1.0, math.nan).to(self.factor.dtype), log

    def inv(self) -> Tensor:  # noqa: D102 - documented on the base
        return self.solve(eye_like(self.factor))


class Columns(Operator):
    """Operators side by side, ``[A₁ A₂ ...]``: a root such as ``[sqrt(D) F]``."""

    def __init__(self, parts: list[Operator]) -> None:
        self.parts = parts

    @property
    def shape(self) -> tuple[int, int]:  # noqa: D102 - documented on the base
        return self.parts[0].shape[0], sum(p.shape[1] for p in self.parts)

    def dense(self) -> Tensor:  # noqa: D102 - documented on the base
        dense = [p.dense() for p in self.parts]
        batch = torch.broadcast_shapes(*(d.shape[:-2] for d in dense))
        return torch.cat([d.expand(*batch, *d.shape[-2:]) for d in dense], -1)

    def matmul(self, x: Tensor) -> Tensor:  # noqa: D102 - documented on the base
        out, start = None, 0
        for part in self.parts:
            width = part.shape[1]
            term = part.matmul(x[..., start : start + width, :])
            out = term if out is None else out + term
            start += width
        assert out is not None
        return out


class BlockDiagonal(Operator, Factor):
    """Square diagonal blocks of static sizes, each an operator of its own."""

    RULES = {
        "matmul": "block diagonal: per block, O(sum b_i^2 k)",
        "solve": "block diagonal: per block, O(sum b_i^3)",
        "logdet": "block diagonal: sum over blocks, O(sum b_i^3)",
        "inv": "block diagonal: per block, O(sum b_i^3)",
        "diagonal": "block diagonal: per block",
        "root": "block diagonal: per block",
    }

    def __init__(self, blocks: list[Operator], factors: list[Factor] | None = None) -> None:
        self.blocks = blocks
        self.factors = factors

    @property
    def shape(self) -> tuple[int, int]:  # noqa: D102 - documented on the base
        n = sum(b.shape[0] for b in self.blocks)
        return n, sum(b.shape[1] for b in self.blocks)

    def _per_block(self, fn: Callable[[int, Operator, Tensor], Tensor], x: Tensor) -> Tensor:
        out, start = [], 0
        for i, block in enumerate(self.blocks):
            width = block.shape[1]
            out.append(fn(i, block, x[..., start : start + width, :]))
            start += width
        batch = torch.broadcast_shapes(*(o.shape[:-2] for o in out))
        return torch.cat([o.expand(*batch, *o.shape[-2:]) for o in out], -2)

    def dense(self) -> Tensor:  # noqa: D102 - documented on the base
        blocks = [b.dense() for b in self.blocks]
        return _block_diag(blocks, [b.shape for b in self.blocks])

    def matmul(self, x: Tensor) -> Tensor:  # noqa: D102 - documented on the base
        return self._per_block(lambda i, block, part: block.matmul(part), x)

    def diagonal(self) -> Tensor:  # noqa: D102 - documented on the base
        parts = [b.diagonal() for b in self.blocks]
        batch = torch.broadcast_shapes(*(p.shape[:-1] for p in parts))
        return torch.cat([p.expand(*batch, p.shape[-1]) for p in parts], -1)

    def factorize(self) -> Factor:  # noqa: D102 - documented on the base
        return BlockDiagonal(self.blocks, [b.factorize() for b in self.blocks])

    def root(self) -> Operator:  # noqa: D102 - documented on the base
        return BlockDiagonal([b.root() for b in self.blocks])

    def solve(self, b: Tensor) -> Tensor:  # noqa: D102 - documented on the base
        factors = self.factors
        assert factors is not None
        return self._per_block(lambda i, block, part: factors[i].solve(part), b)

    def slogdet(self) -> tuple[Tensor, Tensor]:  # noqa: D102 - documented on the base
        assert self.factors is not None
        signs, logs = zip(*(f.slogdet() for f in self.factors), strict=True)
        sign, log = signs[0], logs[0]
        for s, lg in zip(signs[1:], logs[1:], strict=True):
            sign, log = sign * s, log + lg
        return sign, log

    def inv(self) -> Tensor:  # noqa: D102 - documented on the base
        assert self.factors is not None
        return _block_diag([f.inv() for f in self.factors], [b.shape for b in self.blocks])


def _block_diag(blocks: list[Tensor], shapes: list[tuple[int, int]]) -> Tensor:
    """Batched ``torch.block_diag``: each block padded with zeros to full width, then stacked."""
    width = sum(s[1] for s in shapes)
    batch = torch.broadcast_shapes(*(b.shape[:-2] for b in blocks))
    rows, start = [], 0
    for block, (_, cols) in zip(blocks, shapes, strict=True):
        block = block.expand(*batch, *block.shape[-2:])
        rows.append(torch.nn.functional.pad(block, (start, width - start - cols)))
        start += cols
    return torch.cat(rows, -2)


class Banded(Dense):
    """A square matrix zero outside ``lower`` sub- and ``upper`` super-diagonals.

    The product is a sum over the band's diagonals, elementwise, when the band is narrow
    (``lower + upper + 1 <= n / 8``); solves are triangular when the band is one-sided.
    """

    def __init__(self, matrix: Tensor, lower: int, upper: int) -> None:
        super().__init__(matrix)
        self.lower = min(lower, matrix.shape[-1] - 1)
        self.upper = min(upper, matrix.shape[-1] - 1)

    def _narrow(self) -> bool:
        return 8 * (self.lower + self.upper + 1) <= self.matrix.shape[-1]

    def rule(self, name: str) -> str:  # noqa: D102 - documented on the base
        if name == "matmul" and self._narrow():
            return (
                "banded: one elementwise product per diagonal, O(n (lower + upper + 1) k) "
                "(the member itself comes from apply)"
            )
        if name in ("solve", "logdet", "inv") and (self.lower == 0 or self.upper == 0):
            return Triangular.RULES[name]
        return super().rule(name)

    def matmul(self, x: Tensor) -> Tensor:  # noqa: D102 - documented on the base
        if not self._narrow():
            return self.matrix @ x
        n = self.matrix.shape[-1]
        out = None
        for k in range(-self.lower, self.upper + 1):
            d = self.matrix.diagonal(offset=k, dim1=-2, dim2=-1).unsqueeze(-1)
            if k >= 0:  # row i meets x[i + k]
                term = torch.nn.functional.pad(d * x[..., k:, :], (0, 0, 0, k))
            else:  # row i meets x[i - |k|], for rows |k| and below
                term = torch.nn.functional.pad(d * x[..., : n + k, :], (0, 0, -k, 0))
            out = term if out is None else out + term
        assert out is not None
        return out

    def factorize(self) -> Factor:  # noqa: D102 - documented on the base
        if self.lower == 0 or self.upper == 0:
            return Triangular(self.matrix, upper=self.lower == 0)
        return LU(self.matrix)
