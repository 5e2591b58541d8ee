"""Kronecker products ``A ⊗ B`` of two operators, each used through its own rules.

With ``A`` ``n₁ x m₁`` and ``B`` ``n₂ x m₂``, ``(A ⊗ B) x`` reshapes ``x`` to ``m₁ x m₂``
columns and applies ``B`` along one axis and ``A`` along the other:
``O(m₁ m₂ (n₁ + n₂) k)`` for dense factors, against ``O(n₁ n₂ m₁ m₂ k)``. Solves are the same
with the factors' solves, and ``log|det(A ⊗ B)| = n₂ log|det A| + n₁ log|det B|``. More
factors nest: ``A ⊗ B ⊗ C`` is ``A ⊗ (B ⊗ C)``.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from ._operators import Factor, Operator


def _kron_apply(
    first: Callable[[Tensor], Tensor],
    second: Callable[[Tensor], Tensor],
    cols: tuple[int, int],
    rows: tuple[int, int],
    x: Tensor,
) -> Tensor:
    """``(A ⊗ B) x`` given ``A @`` (``first``) and ``B @`` (``second``) on matrices."""
    (m1, m2), (n1, n2) = cols, rows
    k = x.shape[-1]
    grid = x.reshape(*x.shape[:-2], m1, m2, k).transpose(-3, -2)  # (..., m2, m1, k)
    y = second(grid.reshape(*grid.shape[:-3], m2, m1 * k))  # (..., n2, m1 k)
    y = y.reshape(*y.shape[:-2], n2, m1, k).transpose(-3, -2)  # (..., m1, n2, k)
    z = first(y.reshape(*y.shape[:-3], m1, n2 * k))  # (..., n1, n2 k)
    return z.reshape(*z.shape[:-2], n1 * n2, k)


def kron_dense(a: Tensor, b: Tensor) -> Tensor:
    """Batched ``torch.kron`` of the last two dims."""
    n1, m1 = a.shape[-2:]
    n2, m2 = b.shape[-2:]
    product = a[..., :, None, :, None] * b[..., None, :, None, :]
    return product.reshape(*product.shape[:-4], n1 * n2, m1 * m2)


class Kronecker(Operator):
    """``A ⊗ B`` from the two factors' operators."""

    RULES = {
        "matmul": "Kronecker: the factors' products on a reshaped x, O(m1 m2 (n1 + n2) k)",
        "solve": "Kronecker: the factors' solves on a reshaped b",
        "logdet": "Kronecker: n2 log|det A| + n1 log|det B|",
        "inv": "Kronecker: A⁻¹ ⊗ B⁻¹",
        "diagonal": "Kronecker: diag(A) ⊗ diag(B), O(n)",
        "root": "Kronecker: root(A) ⊗ root(B)",
    }

    def __init__(self, first: Operator, second: Operator) -> None:
        self.first = first
        self.second = second

    @property
    def shape(self) -> tuple[int, int]:  # noqa: D102 - documented on the base
        (n1, m1), (n2, m2) = self.first.shape, self.second.shape
        return n1 * n2, m1 * m2

    def dense(self) -> Tensor:  # noqa: D102 - documented on the base
        return kron_dense(self.first.dense(), self.second.dense())

    def matmul(self, x: Tensor) -> Tensor:  # noqa: D102 - documented on the base
        (n1, m1), (n2, m2) = self.first.shape, self.second.shape
        return _kron_apply(self.first.matmul, self.second.matmul, (m1, m2), (n1, n2), x)

    def diagonal(self) -> Tensor:  # noqa: D102 - documented on the base
        if not self._square_factors():
            return super().diagonal()
        a, b = self.first.diagonal(), self.second.diagonal()
        product = a.unsqueeze(-1) * b.unsqueeze(-2)
        return product.reshape(*product.shape[:-2], product.shape[-2] * product.shape[-1])

    def _square_factors(self) -> bool:
        (n1, m1), (n2, m2) = self.first.shape, self.second.shape
        return n1 == m1 and n2 == m2

    def rule(self, name: str) -> str:  # noqa: D102 - documented on the base
        if name in ("solve", "logdet", "inv", "root") and not self._square_factors():
            return Operator.DENSE_RULES[name] + " (rectangular factors)"
        return super().rule(name)

    def factorize(self) -> Factor:  # noqa: D102 - documented on the base
        if not self._square_factors():  # square overall, but not factor by factor
            return super().factorize()
        return KroneckerFactor(self, self.first.factorize(), self.second.factorize())

    def root(self) -> Operator:  # noqa: D102 - documented on the base
        if not self._square_factors():
            return super().root()
        return Kronecker(self.first.root(), self.second.root())


class KroneckerFactor(Factor):
    """The factorization of ``A ⊗ B``: one of each factor."""

    def __init__(self, operator: Kronecker, first: Factor, second: Factor) -> None:
        self.sizes = operator.first.shape[0], operator.second.shape[0]
        self.first = first
        self.second = second

    def solve(self, b: Tensor) -> Tensor:  # noqa: D102 - documented on the base
        return _kron_apply(self.first.solve, self.second.solve, self.sizes, self.sizes, b)

    def slogdet(self) -> tuple[Tensor, Tensor]:  # noqa: D102 - documented on the base
        n1, n2 = self.sizes
        sign_a, log_a = self.first.slogdet()
        sign_b, log_b = self.second.slogdet()
        return sign_a**n2 * sign_b**n1, n2 * log_a + n1 * log_b

    def inv(self) -> Tensor:  # noqa: D102 - documented on the base
        return kron_dense(self.first.inv(), self.second.inv())
