"""Low-rank operators and sums: thin products, Woodbury and the matrix determinant lemma.

``LowRank(U, V)`` is ``U Vᵀ`` (``n x r`` and ``m x r``), never formed for a product. A ``Sum``
of one square diagonal ``D`` and low-rank terms is solved by the Woodbury identity and its
determinant taken by the matrix determinant lemma, both through one factorization of the
``r x r`` capacitance matrix ``C = I + Vᵀ D⁻¹ U`` (Cholesky when ``D`` is known positive and
the terms are ``F Fᵀ``, so that ``C`` is positive definite; LU otherwise):

- ``(D + U Vᵀ)⁻¹ b = D⁻¹ b - D⁻¹ U C⁻¹ Vᵀ D⁻¹ b``
- ``det(D + U Vᵀ) = det(D) det(C)``

in ``O(n r² + r³)``, against ``O(n³)`` for the dense matrix. The identity needs ``D`` invertible
and not tiny against ``U Vᵀ`` (see :class:`Woodbury`); elsewhere its answers are NaN, also
for a sum that is itself invertible (``D = diag(0, 1)`` plus ``e₁ e₁ᵀ`` is ``I``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .._kernels import eye_like
from ._operators import LU, Cholesky, Columns, Dense, Diagonal, Factor, Operator, nan_unless


class LowRank(Operator):
    """``U Vᵀ`` from its factors; ``symmetric`` when ``V`` is ``U`` (a PSD ``F Fᵀ``)."""

    def __init__(self, left: Tensor, right: Tensor, symmetric: bool = False) -> None:
        self.left = left
        self.right = right
        self.symmetric = symmetric

    @property
    def shape(self) -> tuple[int, int]:  # noqa: D102 - documented on the base
        return self.left.shape[-2], self.right.shape[-2]

    @property
    def rank(self) -> int:
        """The inner dimension ``r``."""
        return self.left.shape[-1]

    def _singular(self) -> bool:
        return self.rank < self.shape[0]

    def rule(self, name: str) -> str:  # noqa: D102 - documented on the base
        if name == "matmul":
            return "low rank: U (Vᵀ x), O((n + m) r k)"
        if name == "diagonal":
            return "low rank: row sums of U * V, O(n r)"
        if name == "root" and self.symmetric:
            return "low rank: the factor F of F Fᵀ, O(1)"
        if name in ("solve", "logdet", "inv") and self._singular():
            return "low rank: singular (r < n): NaN solves and inverse, det 0"
        return super().rule(name)

    def dense(self) -> Tensor:  # noqa: D102 - documented on the base
        return self.left @ self.right.mT

    def matmul(self, x: Tensor) -> Tensor:  # noqa: D102 - documented on the base
        return self.left @ (self.right.mT @ x)

    def diagonal(self) -> Tensor:  # noqa: D102 - documented on the base
        k = min(self.shape)
        return (self.left[..., :k, :] * self.right[..., :k, :]).sum(-1)

    def factorize(self) -> Factor:  # noqa: D102 - documented on the base
        if self._singular():
            return Singular(self.dense())
        return LU(self.dense())

    def root(self) -> Operator:  # noqa: D102 - documented on the base
        if self.symmetric:
            return Dense(self.left)
        return super().root()


class Singular(Factor):
    """A matrix of rank below its size by construction: det 0, no solution, no inverse."""

    def __init__(self, matrix: Tensor) -> None:
        self.matrix = matrix

    def solve(self, b: Tensor) -> Tensor:  # noqa: D102 - documented on the base
        batch = torch.broadcast_shapes(self.matrix.shape[:-2], b.shape[:-2])
        nan = (self.matrix.sum((-2, -1)) + math.nan).reshape(*self.matrix.shape[:-2], 1, 1)
        return (b * 0 + nan).expand(*batch, *b.shape[-2:])

    def slogdet(self) -> tuple[Tensor, Tensor]:  # noqa: D102 - documented on the base
        zero = self.matrix.sum((-2, -1)) * 0  # NaN for a NaN member, as everywhere
        return zero, zero - math.inf

    def inv(self) -> Tensor:  # noqa: D102 - documented on the base
        return self.solve(eye_like(self.matrix))


class Sum(Operator):
    """The sum of operators of one shape; Woodbury when it is a diagonal plus low-rank terms."""

    def __init__(self, terms: list[Operator]) -> None:
        self.terms = terms

    @property
    def shape(self) -> tuple[int, int]:  # noqa: D102 - documented on the base
        return self.terms[0].shape

    def _woodbury_parts(self) -> tuple[Diagonal, list[LowRank]] | None:
        """The diagonal and the low-rank terms, when the sum is exactly those."""
        diagonals = [t for t in self.terms if isinstance(t, Diagonal)]
        low = [t for t in self.terms if isinstance(t, LowRank)]
        if len(diagonals) != 1 or len(diagonals) + len(low) != len(self.terms) or not low:
            return None
        return diagonals[0], low

    def rule(self, name: str) -> str:  # noqa: D102 - documented on the base
        woodbury = self._woodbury_parts() is not None
        if name == "matmul":
            return "sum: the sum of the terms' products"
        if name == "diagonal":
            return "sum: the sum of the terms' diagonals"
        if woodbury and name in ("solve", "inv"):
            return "Woodbury: D⁻¹ and one factorization of the r x r capacitance, O(n r^2 + r^3)"
        if woodbury and name == "logdet":
            return "determinant lemma: log|det D| + log|det C|, O(n r^2 + r^3)"
        if woodbury and name == "root" and self.root_is_columns():
            return "[sqrt(D) F] for D + F Fᵀ, O(n r); NaN where D < 0"
        return super().rule(name)

    def dense(self) -> Tensor:  # noqa: D102 - documented on the base
        dense = [t.dense() for t in self.terms]
        return sum(dense[1:], dense[0])

    def matmul(self, x: Tensor) -> Tensor:  # noqa: D102 - documented on the base
        products = [t.matmul(x) for t in self.terms]
        return sum(products[1:], products[0])

    def diagonal(self) -> Tensor:  # noqa: D102 - documented on the base
        parts = [t.diagonal() for t in self.terms]
        return sum(parts[1:], parts[0])

    def factorize(self) -> Factor:  # noqa: D102 - documented on the base
        parts = self._woodbury_parts()
        if parts is None:
            return LU(self.dense())
        diagonal, low = parts
        return Woodbury(diagonal, low)

    def root_is_columns(self) -> bool:
        """Whether the root is ``[sqrt(D) F ...]``: a diagonal plus ``F Fᵀ`` terms only."""
        parts = self._woodbury_parts()
        return parts is not None and all(t.symmetric for t in parts[1])

    def root(self) -> Operator:  # noqa: D102 - documented on the base
        parts = self._woodbury_parts()
        if parts is None or not self.root_is_columns():
            return super().root()
        diagonal, low = parts
        return Columns([diagonal.root(), *(Dense(t.left) for t in low)])


class Woodbury(Factor):
    """``D + U Vᵀ`` factorized through its capacitance ``C = I + Vᵀ D⁻¹ U``.

    Computed in float64 whatever the input's dtype (answers are cast back): the identity
    subtracts two terms of size ``|b| / min|d|``, and float32 would lose a member whose
    diagonal is small against ``U Vᵀ`` even when the member is well conditioned. Where
    ``max_i |U_i| |V_i| / |d_i|`` exceeds ``1e-3 / eps(float64)`` (about 4.5e12), or ``D`` has
    a zero, the answers for that batch element are NaN: the identity cannot resolve it.
    """

    def __init__(self, diagonal: Diagonal, low: list[LowRank]) -> None:
        self.dtype = diagonal.d.dtype
        self.d = diagonal.d.to(torch.float64)
        left = [t.left.to(torch.float64) for t in low]
        right = [t.right.to(torch.float64) for t in low]
        self.symmetric = all(t.symmetric for t in low)  # then right is left
        if len(low) == 1:
            self.left, self.right = left[0], right[0]
        else:
            batch = torch.broadcast_shapes(*(u.shape[:-2] for u in left + right))
            self.left = torch.cat([u.expand(*batch, *u.shape[-2:]) for u in left], -1)
            self.right = torch.cat([v.expand(*batch, *v.shape[-2:]) for v in right], -1)
        inv_d_left = self.left / self.d.unsqueeze(-1)
        # How far the identity's two terms outgrow the answer: past 1e-3 / eps, NaN.
        growth = (inv_d_left.abs() * self.right.abs()).sum(-1).amax(-1)
        self.ok = growth <= 1e-3 / torch.finfo(torch.float64).eps
        capacitance = eye_like(self.left) + self.right.mT @ inv_d_left
        self.inv_d_left = inv_d_left
        # With D > 0 and terms F Fᵀ, C = I + Fᵀ D⁻¹ F is symmetric positive definite.
        spd = self.symmetric and diagonal.positive
        self.capacitance: Factor = Cholesky(capacitance) if spd else LU(capacitance)

    def _out(self, x: Tensor, core: int) -> Tensor:
        return nan_unless(self.ok, x, core).to(self.dtype)

    def solve(self, b: Tensor) -> Tensor:  # noqa: D102 - documented on the base
        b = b.to(torch.float64)
        inv_d_b = b / self.d.unsqueeze(-1)
        inner = self.capacitance.solve(self.right.mT @ inv_d_b)
        return self._out(inv_d_b - self.inv_d_left @ inner, 2)

    def inv_quad(self, b: Tensor) -> Tensor:
        """``bᵀ D⁻¹ b - (Uᵀ D⁻¹ b)ᵀ C⁻¹ (Vᵀ D⁻¹ b)``: no ``n``-long solution is formed."""
        b = b.to(torch.float64)
        inv_d_b = b / self.d
        left = (self.inv_d_left.mT @ b.unsqueeze(-1)).squeeze(-1)
        right = left if self.symmetric else (self.right.mT @ inv_d_b.unsqueeze(-1)).squeeze(-1)
        inner = self.capacitance.solve(right.unsqueeze(-1)).squeeze(-1)
        return self._out((b * inv_d_b).sum(-1) - (left * inner).sum(-1), 0)

    def slogdet(self) -> tuple[Tensor, Tensor]:  # noqa: D102 - documented on the base
        sign_c, log_c = self.capacitance.slogdet()
        sign_d, log_d = self.d.sign().prod(-1), self.d.abs().log().sum(-1)
        return self._out(sign_c * sign_d, 0), self._out(log_c + log_d, 0)

    def inv(self) -> Tensor:  # noqa: D102 - documented on the base
        return self.solve(torch.diag_embed(torch.ones_like(self.d)))
