"""A matrix exponential for batches: fixed scaling and squaring, written for ``torch.func``.

``torch.linalg.matrix_exp`` chooses a Taylor degree and a squaring count per matrix, which
``vmap`` turns into a loop, and its backward is the exponential of a 2n x 2n block matrix. Here
one Padé degree and one squaring count serve every matrix, so a batch is a handful of batched
matmuls and one batched ``inv`` (not ``solve``: ``vmap(jacfwd(torch.linalg.solve))`` is silently
wrong), and autograd differentiates through them.

The squarings track ``D = X - I`` instead of ``X``: ``(I + D)² - I = 2D + D²``. Scaling by a
fixed ``2^-s`` over-scales small matrices, and ``I + tiny`` would lose the tiny part to rounding
(an error of ``2^s eps``); ``D`` keeps it, so small and large inputs are both accurate.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["SQUARINGS", "matrix_exp", "valid_norm"]

SQUARINGS = 8
"""The fixed squaring count: inputs are scaled by ``2^-8``."""

# Padé degree and the 1-norm up to which it is accurate to unit roundoff (Higham, "The scaling
# and squaring method for the matrix exponential revisited", 2005, tables 2.1 and 2.3).
_PADE = {torch.float32: (7, 3.925724783138660), torch.float64: (13, 5.371920351148152)}
_PADE[torch.complex64] = _PADE[torch.float32]
_PADE[torch.complex128] = _PADE[torch.float64]


def _pade_coefficients(degree: int) -> list[float]:
    m = degree
    return [
        math.factorial(2 * m - k)
        * math.factorial(m)
        / (math.factorial(2 * m) * math.factorial(k) * math.factorial(m - k))
        for k in range(m + 1)
    ]


def valid_norm(dtype: torch.dtype) -> float:
    """The largest 1-norm of an input for which :func:`matrix_exp` is accurate to roundoff.

    Beyond it the error grows quickly (measured for skew input in float32: 6e-5 at 1-norm
    2600, 0.05 from orthogonal at 1-norm about 1e4, NaN at 1e5), so structures built on it
    document their raw range from this number.

    Example:
      >>> valid_norm(torch.float32) > 1000
      True
    """
    return _PADE[dtype][1] * 2**SQUARINGS


def matrix_exp(a: Tensor) -> Tensor:
    """``exp(a)`` for a batch of square matrices (float or complex), one Padé degree for all.

    Degree 7 (float32) or 13 (float64) diagonal Padé of ``a / 2^8``, then 8 squarings of
    ``X - I``. Accurate to about the accuracy of ``torch.linalg.matrix_exp`` for inputs of
    1-norm up to :func:`valid_norm` (1005 in float32, 1375 in float64), and correct under
    ``vmap``, ``jacfwd``, ``vmap(jacfwd)`` and ``torch.compile``.

    Args:
      a: a float32, float64, complex64 or complex128 tensor of shape ``(..., n, n)``.

    Returns:
      ``exp(a)``, same shape and dtype.

    Example:
      >>> a = torch.tensor([[0.0, -1.0], [1.0, 0.0]])
      >>> torch.allclose(matrix_exp(a), torch.linalg.matrix_exp(a), atol=1e-6)
      True
    """
    degree, _ = _PADE[a.dtype]
    b = _pade_coefficients(degree)
    a = a * 2.0**-SQUARINGS
    eye = torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)
    a2 = a @ a
    powers = [a2]  # a^2, a^4, ...
    for _ in range(2, degree // 2 + 1):
        powers.append(powers[-1] @ a2)
    even = b[0] * eye + sum(b[2 * k] * powers[k - 1] for k in range(1, degree // 2 + 1))
    odd = a @ (
        b[1] * eye + sum(b[2 * k + 1] * powers[k - 1] for k in range(1, (degree - 1) // 2 + 1))
    )
    # exp(a) - I ≈ q(a)⁻¹ p(a) - I = 2 q(a)⁻¹ odd(a), with p = even + odd and q = even - odd.
    # inv_ex: an exact zero pivot (inputs far beyond valid_norm) gives NaN instead of raising.
    inverse, info = torch.linalg.inv_ex(even - odd)
    inverse = torch.where((info == 0)[..., None, None], inverse, torch.nan)
    d = 2 * (inverse @ odd)
    for _ in range(SQUARINGS):
        d = _square_plus_twice(d)
    return d + eye


def _square_plus_twice(d: Tensor) -> Tensor:
    """``d @ d + 2 d`` in one fused kernel (``addmm``/``baddbmm`` with ``beta=2``).

    One op instead of three (a matmul, a scale and an add): fewer kernels and saved tensors
    under ``vmap(grad)``. Not ``torch.add(d @ d, d, alpha=2)``: inductor's compiled ``jacfwd``
    of that loop is wrong; this form is checked by the contract tests.
    """
    if d.dim() == 2:
        return torch.addmm(d, d, d, beta=2)
    flat = d.reshape(-1, *d.shape[-2:])
    return torch.baddbmm(flat, flat, flat, beta=2).reshape(d.shape)
