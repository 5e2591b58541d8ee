"""Orthogonal matrices."""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from ._structure import LINALG_DTYPES, AbstractStructure, close, eye_like

__all__ = ["Orthogonal", "SpecialOrthogonal"]

_METHODS = ("cayley",)


def haar_orthogonal(
    shape: torch.Size, generator: torch.Generator | None, dtype: torch.dtype, device: torch.device
) -> Tensor:
    """Haar-distributed orthogonal matrices: Q of a Gaussian's QR, columns signed by diag(R)."""
    q, r = torch.linalg.qr(torch.randn(shape, generator=generator, dtype=dtype, device=device))
    signs = torch.where(r.diagonal(dim1=-2, dim2=-1) < 0, -1.0, 1.0).to(dtype)
    return q * signs.unsqueeze(-2)


def _flip_first_column(q: Tensor, flip: Tensor) -> Tensor:
    """Negate the first column of each matrix where ``flip`` (bool, shape ``(..., 1, 1)``)."""
    # One where over the matrix: cheaper under vmap(grad) than slicing and concatenating.
    first = torch.arange(q.shape[-1], device=q.device) == 0
    return torch.where(first & flip, -q, q)


@dataclasses.dataclass(frozen=True)
class Orthogonal(AbstractStructure):
    """Square orthogonal matrices, ``QᵀQ = I`` (both components: determinant +1 and -1).

    ``method="cayley"``: ``A`` is the skew-symmetric matrix built from the strictly lower raw
    triangle and ``Q = (I + A)(I - A)⁻¹ = 2 (I - A)⁻¹ - I``, computed with ``torch.linalg.inv``
    (``vmap(jacfwd(torch.linalg.solve))`` is silently wrong in torch 2.13, ``inv`` is right).
    ``I - A`` has singular values >= 1, so the map is smooth with finite gradients everywhere.
    A negative ``raw[0, 0]`` negates the first column, which reaches determinant -1; the rest
    of the raw diagonal is unused. The Cayley map never reaches rotations with an eigenvalue
    -1 (such as ``-I`` for even n): ``inverse`` of those gives NaN raw. Orthogonality
    degrades as ``eps * ‖raw‖``: it holds to float32 precision for raw entries up to about 100.

    ``init`` is Haar-distributed on the orthogonal group; ``project`` is the polar factor
    ``U Vᵀ`` of the SVD ``U S Vᵀ``.

    Args:
      method: how raw maps to the group; ``"cayley"``.

    Example:
      >>> q = fs.Orthogonal().apply(torch.randn(4, 4))
      >>> torch.allclose(q.mT @ q, torch.eye(4), atol=1e-5)
      True
      >>> q = fs.Orthogonal().apply(-torch.eye(3))
      >>> round(float(torch.linalg.det(q)), 4)
      -1.0
    """

    method: str = "cayley"

    dtypes = LINALG_DTYPES
    square = True

    def __post_init__(self) -> None:
        if self.method not in _METHODS:
            raise ValueError(
                f"Orthogonal: method must be one of {', '.join(map(repr, _METHODS))}, "
                f"got {self.method!r}."
            )

    def _apply(self, raw: Tensor) -> Tensor:
        return _flip_first_column(_cayley(raw), raw[..., :1, :1] < 0)

    def _inverse(self, value: Tensor) -> Tensor:
        flip = (torch.linalg.det(value) < 0)[..., None, None]
        lower = _inverse_cayley(_flip_first_column(value, flip))
        sign = torch.where(flip, -1.0, 1.0).to(value.dtype)
        corner = torch.nn.functional.pad(sign, (0, value.shape[-1] - 1, 0, value.shape[-1] - 1))
        return lower + corner

    def _contains(self, value: Tensor, atol: float, rtol: float) -> Tensor:
        return close(value.mT @ value, eye_like(value), atol, rtol)

    def _project(self, value: Tensor) -> Tensor:
        u, _, vh = torch.linalg.svd(value, full_matrices=False)
        return u @ vh

    def _init(self, shape, generator, dtype, device) -> Tensor:
        return self._inverse(haar_orthogonal(shape, generator, dtype, device))


@dataclasses.dataclass(frozen=True)
class SpecialOrthogonal(AbstractStructure):
    """Rotations: square orthogonal matrices with determinant +1.

    The Cayley map of ``Orthogonal`` without its sign: the whole raw diagonal is unused, and
    the same limits hold (rotations with an eigenvalue -1, such as ``-I`` for even n, are out
    of reach; ``inverse`` gives NaN there). ``init`` is Haar on the rotation group; ``project``
    is the nearest rotation, ``U diag(1, ..., 1, det(U Vᵀ)) Vᵀ``.

    Example:
      >>> q = fs.SpecialOrthogonal().apply(torch.randn(3, 3))
      >>> round(float(torch.linalg.det(q)), 4)
      1.0
    """

    dtypes = LINALG_DTYPES
    square = True

    def _apply(self, raw: Tensor) -> Tensor:
        return _cayley(raw)

    def _inverse(self, value: Tensor) -> Tensor:
        return _inverse_cayley(value)

    def _contains(self, value: Tensor, atol: float, rtol: float) -> Tensor:
        orthogonal = close(value.mT @ value, eye_like(value), atol, rtol)
        return orthogonal & (torch.linalg.det(value) > 0)

    def _project(self, value: Tensor) -> Tensor:
        u, _, vh = torch.linalg.svd(value, full_matrices=False)
        # Flip the direction of the smallest singular value where the polar factor is a
        # reflection: the nearest rotation (singular values come in descending order).
        flip = (torch.linalg.det(u @ vh) < 0)[..., None]
        last = torch.arange(value.shape[-1], device=value.device) == value.shape[-1] - 1
        return (u * torch.where(flip & last, -1.0, 1.0).to(value.dtype).unsqueeze(-2)) @ vh

    def _init(self, shape, generator, dtype, device) -> Tensor:
        q = haar_orthogonal(shape, generator, dtype, device)
        return _inverse_cayley(_flip_first_column(q, (torch.linalg.det(q) < 0)[..., None, None]))


def _cayley(raw: Tensor) -> Tensor:
    """``(I + A)(I - A)⁻¹ = 2 (I - A)⁻¹ - I`` for the skew ``A`` of the strict lower triangle.

    Written with ``inv``: ``vmap(jacfwd(torch.linalg.solve))`` is silently wrong in torch 2.13.
    """
    lower = torch.tril(raw, -1)
    eye = eye_like(raw)
    return 2 * torch.linalg.inv(eye - lower + lower.mT) - eye


def _inverse_cayley(rotation: Tensor) -> Tensor:
    """The strict lower triangle of ``A = (Q - I)(Q + I)⁻¹``, NaN where ``Q + I`` is singular.

    Not differentiated, so ``solve`` is safe here; ``solve_ex`` does not raise where ``Q`` has
    an eigenvalue -1.
    """
    eye = eye_like(rotation)
    skew, info = torch.linalg.solve_ex(rotation + eye, rotation - eye, left=False)
    skew = torch.where((info == 0)[..., None, None], skew, torch.nan)
    return torch.tril(skew - skew.mT, -1) / 2
