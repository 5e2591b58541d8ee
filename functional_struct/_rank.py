"""Rank and norm bounds: matrices described by their singular values.

``LowRank`` is a factored structure (its raw is a tuple of tensors, so a rank-r n x m matrix
costs r(n + m) numbers, not nm); ``BoundedSpectralNorm`` rescales by the largest singular value.
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import Tensor

from ._structure import LINALG_DTYPES, AbstractStructure, finite_or_zero

__all__ = ["BoundedSpectralNorm", "LowRank"]


def _check_rank(owner: str, rank: object) -> None:
    if not isinstance(rank, int) or isinstance(rank, bool) or rank < 1:
        raise ValueError(f"{owner}: rank must be an int >= 1, got {rank!r}.")


def _rank_problem(rank: int, core: tuple[int, ...]) -> str | None:
    if rank > min(core[-2], core[-1]):
        return f"has rank {rank} > min(rows, columns)"
    return None


def _factor_shapes(left: Tensor, right: Tensor, rank: int) -> str | None:
    """Why ``left`` (n x r) and ``right`` (m x r) are not a pair of rank-``rank`` factors."""
    if left.dim() < 2 or right.dim() < 2:
        return "parts need matrices in their last two dims"
    if left.shape[-1] != rank or right.shape[-1] != rank:
        return f"parts need {rank} columns each (left n x {rank}, right m x {rank})"
    if left.shape[:-2] != right.shape[:-2]:
        return "parts need the same batch dims"
    return _rank_problem(rank, (left.shape[-2], right.shape[-2]))


def _tail_is_small(singular: Tensor, rank: int, atol: float, rtol: float) -> Tensor:
    """Whether the singular values past the first ``rank`` are zero within tolerance."""
    tail = singular[..., rank:]
    return (tail <= atol + rtol * singular[..., :1]).all(-1)


@dataclasses.dataclass(frozen=True)
class LowRank(AbstractStructure):
    """n x m matrices of rank at most ``rank``, from a pair of factors: ``A = left @ rightᵀ``.

    The raw is the tuple ``(left, right)`` of shapes ``(..., n, rank)`` and ``(..., m, rank)``:
    r(n + m) numbers. ``inverse`` gives the balanced factors ``U √S`` and ``V √S`` of the SVD;
    ``project`` is the truncated SVD (Eckart-Young: the nearest matrix of rank <= r);
    ``contains`` asks that the singular values past the r-th be below ``atol + rtol * σ₁``.
    ``init`` draws Gaussian factors scaled so that entries of ``A`` have variance ``1 / m``.

    Args:
      rank: the largest rank, at most ``min(n, m)``.

    Example:
      >>> s = fs.LowRank(1)
      >>> s.apply((torch.tensor([[1.0], [2.0]]), torch.tensor([[3.0], [4.0]])))
      tensor([[3., 4.],
              [6., 8.]])
      >>> left, right = s.init((5, 4))
      >>> left.shape, right.shape
      (torch.Size([5, 1]), torch.Size([4, 1]))
    """

    rank: int

    dtypes = LINALG_DTYPES
    raw_names = ("left", "right")

    def __post_init__(self) -> None:
        _check_rank("LowRank", self.rank)

    def _check_core_shape(self, core: tuple[int, ...]) -> str | None:
        return _rank_problem(self.rank, core)

    def _check_raw_shapes(self, raw: tuple[Tensor, ...]) -> str | None:
        return _factor_shapes(*raw, self.rank)

    def _apply(self, raw: tuple[Tensor, ...]) -> Tensor:
        left, right = raw
        return left @ right.mT

    def _inverse(self, value: Tensor) -> tuple[Tensor, Tensor]:
        u, s, vh = torch.linalg.svd(value, full_matrices=False)
        r = self.rank
        u, v = _signed(u[..., :r], vh[..., :r, :].mT)
        root = s[..., :r].sqrt().unsqueeze(-2)
        return u * root, v * root

    def _contains(self, value: Tensor, atol: float, rtol: float) -> Tensor:
        return _tail_is_small(torch.linalg.svdvals(finite_or_zero(value)), self.rank, atol, rtol)

    def _project(self, value: Tensor) -> Tensor:
        u, s, vh = torch.linalg.svd(value, full_matrices=False)
        r = self.rank
        return (u[..., :r] * s[..., :r].unsqueeze(-2)) @ vh[..., :r, :]

    def _init(self, shape, generator, dtype, device) -> tuple[Tensor, Tensor]:
        *batch, n, m = shape
        scale = (self.rank * m) ** -0.25
        left = torch.randn(*batch, n, self.rank, generator=generator, dtype=dtype, device=device)
        right = torch.randn(*batch, m, self.rank, generator=generator, dtype=dtype, device=device)
        return scale * left, scale * right


@dataclasses.dataclass(frozen=True)
class BoundedSpectralNorm(AbstractStructure):
    """Matrices of spectral norm (largest singular value) at most ``max_norm``.

    ``apply`` divides the raw by ``max(1, σ₁(raw) / max_norm)``: members map to themselves
    (``inverse`` is the identity), others are scaled onto the boundary, as spectral
    normalization does, but with the exact ``σ₁`` from ``torch.linalg.svdvals`` rather than a
    power-iteration estimate. A layer with this weight is ``max_norm``-Lipschitz. ``project``
    clips the singular values at ``max_norm`` (the nearest member, which differs from the
    scaling of ``apply``).

    Args:
      max_norm: the bound, > 0.

    Example:
      >>> w = fs.BoundedSpectralNorm(1.0).apply(torch.tensor([[3.0, 0.0], [0.0, 1.0]]))
      >>> w
      tensor([[1.0000, 0.0000],
              [0.0000, 0.3333]])
    """

    max_norm: float = 1.0

    dtypes = LINALG_DTYPES

    def __post_init__(self) -> None:
        m = self.max_norm
        if not (isinstance(m, (int, float)) and m > 0 and math.isfinite(m)):
            raise ValueError(
                f"BoundedSpectralNorm: max_norm must be a finite number > 0, got {m!r}."
            )

    def _apply(self, raw: Tensor) -> Tensor:
        top = torch.linalg.svdvals(finite_or_zero(raw))[..., 0]  # svdvals raises on NaN
        return raw / torch.clamp(top / self.max_norm, min=1.0)[..., None, None]

    def _inverse(self, value: Tensor) -> Tensor:
        return value.clone()

    def _contains(self, value: Tensor, atol: float, rtol: float) -> Tensor:
        top = torch.linalg.svdvals(finite_or_zero(value))[..., 0]
        return top <= self.max_norm * (1 + rtol) + atol

    def _project(self, value: Tensor) -> Tensor:
        u, s, vh = torch.linalg.svd(value, full_matrices=False)
        return (u * torch.clamp(s, max=self.max_norm).unsqueeze(-2)) @ vh

    def _init(self, shape, generator, dtype, device) -> Tensor:
        n, m = shape[-2:]
        raw = torch.randn(shape, generator=generator, dtype=dtype, device=device)
        return raw * (self.max_norm / (math.sqrt(n) + math.sqrt(m)))


def _signed(u: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
    """Singular vector pairs signed so that each column of ``u`` has a positive largest entry.

    One answer for every batch layout (LAPACK's signs differ between batched and single calls).
    """
    top = u.gather(-2, u.abs().argmax(-2, keepdim=True))
    sign = torch.where(top < 0, -1.0, 1.0).to(u.dtype)
    return u * sign, v * sign
