"""Circulant, Toeplitz and Hankel operators: products by FFT, circulant solves by FFT.

- ``Circulant(c)``: ``A[i, j] = c[(j - i) mod n]``. The DFT diagonalizes it: ``A x`` is
  ``irfft(conj(rfft(c)) * rfft(x))``, ``A⁻¹ b`` divides instead, and ``det A`` is the product
  of the ``n`` eigenvalues ``conj(fft(c))``: all ``O(n log n)`` per column.
- ``Toeplitz(t)``: ``A[i, j] = t[j - i + m - 1]`` (the ``m + n - 1`` diagonal values from the
  bottom-left corner). ``A x`` is a slice of the linear convolution of ``flip(t)`` with ``x``,
  done by FFT of a power-of-two length at least ``m + 2n - 2``. Solves and determinants are
  dense LU: Levinson recursion needs every leading minor non-singular (it breaks down on
  invertible matrices such as ``[[0, 1], [1, 0]]``) and runs ``n`` dependent steps, which
  ``vmap`` and ``torch.compile`` unroll; conjugate gradients needs a symmetric
  positive-definite matrix, which a ``Toeplitz`` member is not in general.
- ``Hankel(h)``: ``A[i, j] = h[i + j]``; ``A x`` is the Toeplitz product of ``flip(h)`` with
  ``flip(x)``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._operators import Factor, Operator


def _empty(first: Tensor, x: Tensor, rows: int) -> Tensor | None:
    """The zero-size answer of a product or solve, or None: MKL's FFT refuses empty input."""
    if first.numel() and x.numel():
        return None
    batch = torch.broadcast_shapes(first.shape[:-1], x.shape[:-2])
    return x.new_zeros((*batch, rows, x.shape[-1]))


class Circulant(Operator, Factor):
    """A square circulant matrix held as its first row ``c`` (``(..., n)``)."""

    RULES = {
        "matmul": "circulant: FFT, O(n log n k)",
        "solve": "circulant: FFT, O(n log n k)",
        "logdet": "circulant: sum of log|fft(c)|, O(n log n)",
        "inv": "circulant: FFT against I, O(n^2 log n)",
        "diagonal": "circulant: c[0], O(n)",
    }

    def __init__(self, row: Tensor) -> None:
        self.row = row

    @property
    def shape(self) -> tuple[int, int]:  # noqa: D102 - documented on the base
        return self.row.shape[-1], self.row.shape[-1]

    def _spectrum(self) -> Tensor:
        """The eigenvalues ``conj(rfft(c))`` for the first ``n // 2 + 1`` frequencies."""
        return torch.fft.rfft(self.row).conj()

    def dense(self) -> Tensor:  # noqa: D102 - documented on the base
        n = self.row.shape[-1]
        index = torch.arange(n, device=self.row.device)
        return self.row[..., (index - index.unsqueeze(-1)) % n]

    def matmul(self, x: Tensor) -> Tensor:  # noqa: D102 - documented on the base
        n = self.row.shape[-1]
        if (empty := _empty(self.row, x, n)) is not None:
            return empty
        spectrum = self._spectrum().unsqueeze(-1)
        return torch.fft.irfft(spectrum * torch.fft.rfft(x, dim=-2), n=n, dim=-2)

    def diagonal(self) -> Tensor:  # noqa: D102 - documented on the base
        return self.row[..., :1].expand(self.row.shape)

    def factorize(self) -> Factor:  # noqa: D102 - documented on the base
        return self

    def solve(self, b: Tensor) -> Tensor:  # noqa: D102 - documented on the base
        n = self.row.shape[-1]
        if (empty := _empty(self.row, b, n)) is not None:
            return empty
        spectrum = self._spectrum().unsqueeze(-1)
        return torch.fft.irfft(torch.fft.rfft(b, dim=-2) / spectrum, n=n, dim=-2)

    def slogdet(self) -> tuple[Tensor, Tensor]:  # noqa: D102 - documented on the base
        n = self.row.shape[-1]
        if not self.row.numel():
            zero = self.row.new_zeros(self.row.shape[:-1])
            return zero, zero
        spectrum = self._spectrum()
        # Frequencies 1 .. ceil(n/2) - 1 stand for a conjugate pair each: counted twice, with
        # a positive product |λ|². Frequency 0 and, for even n, n/2 are real: they carry the sign.
        index = torch.arange(spectrum.shape[-1], device=self.row.device)
        weight = 2 - (index == 0).to(self.row.dtype) - (2 * index == n).to(self.row.dtype)
        log = (spectrum.abs().log() * weight).sum(-1)
        sign = spectrum[..., 0].real.sign()
        if n % 2 == 0:
            sign = sign * spectrum[..., -1].real.sign()
        return torch.where(log == -torch.inf, 0.0, sign), log

    def inv(self) -> Tensor:  # noqa: D102 - documented on the base
        n = self.row.shape[-1]
        return self.solve(torch.eye(n, dtype=self.row.dtype, device=self.row.device))


def _fft_length(size: int) -> int:
    """The smallest power of two at least ``size``."""
    return 1 << max(size - 1, 0).bit_length()


def toeplitz_matmul(diagonals: Tensor, rows: int, x: Tensor) -> Tensor:
    """``A @ x`` for the ``rows x n`` Toeplitz ``A[i, j] = diagonals[j - i + rows - 1]``."""
    n = x.shape[-2]
    if (empty := _empty(diagonals, x, rows)) is not None:
        return empty
    length = _fft_length(rows + 2 * n - 2)
    kernel = torch.fft.rfft(diagonals.flip(-1), n=length).unsqueeze(-1)
    full = torch.fft.irfft(kernel * torch.fft.rfft(x, n=length, dim=-2), n=length, dim=-2)
    return full[..., n - 1 : n - 1 + rows, :]


class Toeplitz(Operator):
    """An ``m x n`` Toeplitz matrix held as its ``m + n - 1`` diagonal values."""

    RULES = {"matmul": "Toeplitz: FFT of the circulant embedding, O((m + n) log(m + n) k)"}

    def __init__(self, diagonals: Tensor, rows: int) -> None:
        self.diagonals = diagonals
        self.rows = rows

    @property
    def shape(self) -> tuple[int, int]:  # noqa: D102 - documented on the base
        return self.rows, self.diagonals.shape[-1] - self.rows + 1

    def dense(self) -> Tensor:  # noqa: D102 - documented on the base
        m, n = self.shape
        device = self.diagonals.device
        index = torch.arange(n, device=device) - torch.arange(m, device=device).unsqueeze(-1)
        return self.diagonals[..., index + m - 1]

    def matmul(self, x: Tensor) -> Tensor:  # noqa: D102 - documented on the base
        return toeplitz_matmul(self.diagonals, self.rows, x)


class Hankel(Operator):
    """An ``m x n`` Hankel matrix held as its ``m + n - 1`` anti-diagonal values."""

    RULES = {"matmul": "Hankel: the Toeplitz FFT product with flipped x, O((m + n) log(m + n) k)"}

    def __init__(self, antidiagonals: Tensor, rows: int) -> None:
        self.antidiagonals = antidiagonals
        self.rows = rows

    @property
    def shape(self) -> tuple[int, int]:  # noqa: D102 - documented on the base
        return self.rows, self.antidiagonals.shape[-1] - self.rows + 1

    def dense(self) -> Tensor:  # noqa: D102 - documented on the base
        m, n = self.shape
        device = self.antidiagonals.device
        index = torch.arange(n, device=device) + torch.arange(m, device=device).unsqueeze(-1)
        return self.antidiagonals[..., index]

    def matmul(self, x: Tensor) -> Tensor:  # noqa: D102 - documented on the base
        return toeplitz_matmul(self.antidiagonals.flip(-1), self.rows, x.flip(-2))
