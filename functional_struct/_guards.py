"""Decompositions that never raise: inputs scaled by a power of two, NaN where no answer exists.

``torch.linalg.svd`` and ``eigh`` raise (``LinAlgError``) on NaN/Inf entries and on finite
entries large enough that their internal norms overflow (float32 entries near ``3e38``), and
``(x + xᵀ) / 2`` itself overflows there. The wrappers here divide each matrix by the power of
two nearest below its largest entry (exact, and undone on the singular values or eigenvalues),
replace matrices with non-finite entries by zeros before decomposing, and give NaN results for
those matrices: a hook built on them answers finite input with finite or NaN output, never an
exception, and stays free of host syncs (``vmap``, ``torch.compile``).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["eigh", "eigvalsh", "svd", "svdvals"]


def _prepare(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``x / scale`` (non-finite matrices zeroed), the (..., 1, 1) scale and a finite mask."""
    finite = torch.isfinite(x).flatten(-2).all(-1)[..., None, None]
    x = torch.where(finite, x, 0.0)
    top = x.detach().abs().amax((-2, -1), keepdim=True)
    scale = torch.where(top > 0, torch.exp2(torch.floor(torch.log2(top))), 1.0)
    return x / scale, scale, finite


def svd(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The thin SVD ``U, S, Vᴴ`` of a batch; NaN for matrices with a non-finite entry.

    Example:
      >>> u, s, vh = svd(torch.tensor([[3e38, 0.0], [0.0, 1e38]]))
      >>> s
      tensor([3.0000e+38, 1.0000e+38])
    """
    y, scale, finite = _prepare(x)
    u, s, vh = torch.linalg.svd(y, full_matrices=False)
    s = torch.where(finite[..., 0], s * scale[..., 0], torch.nan)
    return torch.where(finite, u, torch.nan), s, torch.where(finite, vh, torch.nan)


def svdvals(x: Tensor) -> Tensor:
    """The singular values of a batch, descending; NaN for matrices with a non-finite entry."""
    y, scale, finite = _prepare(x)
    return torch.where(finite[..., 0], torch.linalg.svdvals(y) * scale[..., 0], torch.nan)


def eigh(x: Tensor) -> tuple[Tensor, Tensor]:
    """Eigenvalues (ascending) and vectors of the symmetric part ``(x + xᴴ) / 2``.

    Hermitian for complex ``x``: its eigenvalues are real.

    NaN for matrices with a non-finite entry; the symmetric part is formed after scaling, so it
    cannot overflow.

    Example:
      >>> eigh(torch.tensor([[3e38, 0.0], [0.0, -3e38]]))[0]
      tensor([-3.0000e+38,  3.0000e+38])
    """
    y, scale, finite = _prepare(x)
    values, vectors = torch.linalg.eigh((y + y.mH) / 2)
    values = torch.where(finite[..., 0], values * scale[..., 0], torch.nan)
    return values, torch.where(finite, vectors, torch.nan)


def eigvalsh(x: Tensor) -> Tensor:
    """The eigenvalues (ascending) of ``(x + xᴴ) / 2``; NaN for non-finite matrices."""
    y, scale, finite = _prepare(x)
    values = torch.linalg.eigvalsh((y + y.mH) / 2)
    return torch.where(finite[..., 0], values * scale[..., 0], torch.nan)
