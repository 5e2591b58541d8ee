"""Orthogonal matrices and orthonormal frames (the Stiefel manifold)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from . import _guards
from ._expm import matrix_exp
from ._rawform import RawShape
from ._structure import LINALG_DTYPES, AbstractStructure, close, eye_like
from ._validate import check_choice

__all__ = ["Orthogonal", "SpecialOrthogonal"]

_METHODS = ("cayley", "expm", "householder")

INIT_RAW_BOUND = 100.0
"""``init`` keeps raw entries up to this size: the range where the charts are precise."""

_ROUNDS = 8
"""Candidates ``init`` draws per matrix; the first in range is kept (:func:`draw_in_range`)."""


def haar_orthogonal(
    shape: torch.Size, generator: torch.Generator | None, dtype: torch.dtype, device: torch.device
) -> Tensor:
    """Haar-distributed orthogonal matrices: Q of a Gaussian's QR, columns signed by diag(R)."""
    q, r = torch.linalg.qr(torch.randn(shape, generator=generator, dtype=dtype, device=device))
    signs = torch.where(r.diagonal(dim1=-2, dim2=-1) < 0, -1.0, 1.0).to(dtype)
    return q * signs.unsqueeze(-2)


def draw_in_range(
    draw: Callable[[tuple[int, ...]], Any],
    batch: tuple[int, ...],
    bound: float = INIT_RAW_BOUND,
    rounds: int = _ROUNDS,
) -> Any:
    """For each batch element, the first of ``rounds`` draws whose raw entries are all in range.

    ``draw(shape)`` returns a tensor or a tuple of tensors with leading dims ``shape``;
    non-finite entries count as beyond ``bound``. All ``rounds`` candidates are drawn in one
    batched call and the first in range is picked with ``argmax`` and ``gather``: no host sync
    and no data-dependent loop, so this works on the meta device, and one generator state gives
    one answer.

    A chart of the orthogonal group has an edge (for the Cayley map, the matrices with an
    eigenvalue -1), and a Haar draw near it has a raw of any size: for Cayley, 1 in 60 draws
    at n = 5 and about 1 in 10 at n = 256 have an entry above 100, a few in 10⁴ above 10⁴. There
    ``apply`` loses precision as ``eps * |raw|`` and gradients vanish, so ``init`` keeps the
    first candidate in range: its members are Haar-distributed conditioned on the raw lying
    where the map is precise. Where all ``rounds`` candidates are out of range (probability
    below ``0.1 ** 8``) the first is clamped into ``[-bound, bound]`` (NaN entries set to 0):
    still a member, no longer exactly Haar.
    """
    raw = draw((rounds, *batch))
    parts = raw if isinstance(raw, tuple) else (raw,)
    keep = len(batch) + 1
    ok = torch.ones((rounds, *batch), dtype=torch.bool, device=parts[0].device)
    for part in parts:
        ok = ok & (part.abs() <= bound).flatten(keep).all(-1)
    # argmax returns the first maximal index: the first candidate in range, or 0 if none is.
    first = ok.to(torch.uint8).argmax(0, keepdim=True)
    found = ok.any(0)
    out = []
    for part in parts:
        core = part.shape[keep:]
        index = first.reshape(*first.shape, *(1,) * len(core)).expand(1, *batch, *core)
        picked = part.gather(0, index).squeeze(0)
        fallback = torch.nan_to_num(picked, nan=0.0).clamp(-bound, bound)
        out.append(torch.where(found.reshape(*batch, *(1,) * len(core)), picked, fallback))
    return tuple(out) if isinstance(raw, tuple) else out[0]


def _haar_raw(
    inverse: Callable[[Tensor], Tensor],
    shape: torch.Size,
    generator: torch.Generator | None,
    dtype: torch.dtype,
    device: torch.device,
    rounds: int = _ROUNDS,
) -> Tensor:
    """``inverse`` of Haar draws of the trailing shape, in range (:func:`draw_in_range`)."""

    def draw(batch: tuple[int, ...]) -> Tensor:
        return inverse(haar_orthogonal(torch.Size((*batch, *shape[-2:])), generator, dtype, device))

    return draw_in_range(draw, tuple(shape[:-2]), rounds=rounds)


def flip_smallest_where_reflection(u: Tensor, vh: Tensor) -> Tensor:
    """``u`` with its last column negated where ``U Vᵀ`` is a reflection.

    The last column belongs to the smallest singular value (they come in descending order), so
    ``U Vᵀ`` becomes the nearest rotation, and ``U S Vᵀ`` the nearest matrix of positive
    determinant.
    """
    n = u.shape[-1]
    flip = (torch.linalg.det(u @ vh) < 0)[..., None]
    last = torch.arange(n, device=u.device) == n - 1
    return u * torch.where(flip & last, -1.0, 1.0).to(u.dtype).unsqueeze(-2)


def _flip_first_column(q: Tensor, flip: Tensor) -> Tensor:
    """Negate the first column of each matrix where ``flip`` (bool, shape ``(..., 1, 1)``)."""
    # A product with a (..., 1, n) sign row: under vmap(grad) of the ensemble step (E = 64,
    # n = 32) 1.03-1.07x the unflipped map, where torch.where(..., -q, q) was 1.13-1.18x.
    first = torch.arange(q.shape[-1], device=q.device) == 0
    return q * torch.where(first & flip, -1.0, 1.0).to(q.dtype)


@dataclasses.dataclass(frozen=True)
class Orthogonal(AbstractStructure):
    """Matrices with orthonormal columns, ``QᵀQ = I``: square (both determinants) or tall.

    The raw has the shape of ``Q``; a square ``Q`` is an orthogonal matrix, a tall one (more
    rows than columns) a point of the Stiefel manifold. Three maps, all smooth with finite
    gradients everywhere:

    - ``"cayley"`` (default, the fastest at n >= 64): ``A`` is the skew-symmetric matrix of the
      strict lower raw triangle (zero-padded to n x n for tall raw) and ``Q`` is the first columns
      of ``(I + A)(I - A)⁻¹ = 2 (I - A)⁻¹ - I``, computed with ``torch.linalg.inv_ex``
      (``vmap(jacfwd(torch.linalg.solve))`` is silently wrong in torch 2.13). Orthogonality
      degrades as ``eps * ‖raw‖``: it holds to float32 precision for raw entries up to the
      ``max_magnitude`` ``fs.testing.CATALOG`` documents. Rotations with an eigenvalue -1
      (such as ``-I`` for even n) are out of its reach: ``inverse`` gives NaN raw there.
    - ``"expm"`` (square only): ``Q = exp(A)``, by the batched Padé exponential of this library
      (8 squarings; accurate while the 1-norm of ``A`` is below about 1000 in float32; the
      raw range promised is the one ``fs.testing.CATALOG`` documents). ``inverse`` is the
      principal matrix logarithm (polar square roots, then the inverse Cayley series),
      computed in float64.
    - ``"householder"``: ``Q = -H₁ ⋯ H_k`` (first columns), each ``H_j`` the reflection along
      the raw column ``j`` below the diagonal with a unit in the diagonal slot
      (``torch.linalg.householder_product``). Raw zero gives the identity. Columns that would
      need a reflection along ``e_j`` itself are out of reach (``inverse`` gives NaN).

    For square ``Q``, a negative ``raw[0, 0]`` negates the first column, which reaches
    determinant -1; the rest of the raw diagonal is unused (all of it for tall raw, whose set
    is connected). ``init`` is Haar-distributed, conditioned on raw entries of at most 100
    (``draw_in_range``); ``project`` is the polar factor ``U Vᵀ`` of the thin SVD ``U S Vᵀ``.

    Args:
      method: ``"cayley"``, ``"expm"`` or ``"householder"``.

    Example:
      >>> q = fs.Orthogonal().apply(torch.randn(4, 4))
      >>> torch.allclose(q.mT @ q, torch.eye(4), atol=1e-5)
      True
      >>> q = fs.Orthogonal().apply(-torch.eye(3))
      >>> round(float(torch.linalg.det(q)), 4)
      -1.0
      >>> frame = fs.Orthogonal(method="householder").apply(torch.randn(5, 2))
      >>> torch.allclose(frame.mT @ frame, torch.eye(2), atol=1e-5)
      True
    """

    method: str = "cayley"

    dtypes = LINALG_DTYPES

    def __post_init__(self) -> None:
        check_choice(self, "method", self.method, _METHODS)

    def value_shape(self, raw_shape: RawShape) -> torch.Size:
        """Square or tall (rows >= columns); square only for ``method="expm"``."""
        assert isinstance(raw_shape, torch.Size)
        if raw_shape[-2] < raw_shape[-1]:
            raise ValueError("needs a square or tall matrix (rows >= columns; transpose a wide one)")
        if self.method == "expm" and raw_shape[-2] != raw_shape[-1]:
            raise ValueError(
                "with method 'expm' needs a square matrix (tall ones: 'cayley', 'householder')"
            )
        return raw_shape

    def _apply(self, raw: Tensor) -> Tensor:
        if self.method == "cayley":
            q = _cayley(raw)
        elif self.method == "expm":
            lower = torch.tril(raw, -1)
            q = matrix_exp(lower - lower.mT)
            # Far beyond valid_norm the squarings overflow: NaN, not a wrong infinite entry.
            q = torch.where(torch.isinf(q), torch.nan, q)
        else:
            q = _householder(raw)
        if raw.shape[-1] != raw.shape[-2]:
            return q
        return _flip_first_column(q, raw[..., :1, :1] < 0)

    def _inverse(self, value: Tensor) -> Tensor:
        n, k = value.shape[-2:]
        if n != k:
            return _INVERSES[self.method](value)
        flip = (torch.linalg.det(value) < 0)[..., None, None]
        lower = _INVERSES[self.method](_flip_first_column(value, flip))
        sign = torch.where(flip, -1.0, 1.0).to(value.dtype)
        return lower + torch.nn.functional.pad(sign, (0, n - 1, 0, n - 1))

    def _contains(self, value: Tensor, atol: float, rtol: float) -> Tensor:
        return close(value.mT @ value, eye_like(value), atol, rtol)

    def _project(self, value: Tensor) -> Tensor:
        u, _, vh = _guards.svd(value)
        return u @ vh

    def _init(self, shape, generator, dtype, device) -> Tensor:
        # The principal logarithm has spectral norm at most pi, so its entries are always in
        # range: one candidate suffices (the fallback only catches the measure-zero NaN).
        rounds = 1 if self.method == "expm" else _ROUNDS
        return _haar_raw(self._inverse, shape, generator, dtype, device, rounds)


@dataclasses.dataclass(frozen=True)
class SpecialOrthogonal(AbstractStructure):
    """Rotations: square orthogonal matrices with determinant +1.

    The Cayley map of ``Orthogonal`` without its sign: the whole raw diagonal is unused, and
    the same limits hold (rotations with an eigenvalue -1, such as ``-I`` for even n, are out
    of reach; ``inverse`` gives NaN there). ``init`` is Haar on the rotation group (raw entries
    at most 100, as for ``Orthogonal``); ``project`` is the nearest rotation,
    ``U diag(1, ..., 1, det(U Vᵀ)) Vᵀ``.

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
        u, _, vh = _guards.svd(value)
        return flip_smallest_where_reflection(u, vh) @ vh

    def _init(self, shape, generator, dtype, device) -> Tensor:
        def rotation_raw(q: Tensor) -> Tensor:
            return _inverse_cayley(
                _flip_first_column(q, (torch.linalg.det(q) < 0)[..., None, None])
            )

        return _haar_raw(rotation_raw, shape, generator, dtype, device)


def _cayley(raw: Tensor) -> Tensor:
    """The first columns of ``(I + A)(I - A)⁻¹ = 2 (I - A)⁻¹ - I``, ``A`` skew from the raw.

    ``A`` is built from the strict lower triangle of the n x k raw, zero-padded to n x n.
    Written with ``inv_ex``: ``vmap(jacfwd(torch.linalg.solve))`` is silently wrong in torch 2.13.
    """
    n, k = raw.shape[-2:]
    lower = torch.tril(raw, -1)
    if k < n:  # tall: zero-pad to n x n (a pad of width 0 would still copy, so square skips it)
        lower = torch.nn.functional.pad(lower, (0, n - k))
    eye = eye_like(lower)
    q = 2 * _inv_or_nan(eye - lower + lower.mT) - eye
    return q if n == k else q[..., :k]


def _inv_or_nan(a: Tensor) -> Tensor:
    """``a⁻¹``, NaN for each matrix whose LU factorization hits an exact zero pivot.

    ``I - A`` with ``A`` skew is invertible in exact arithmetic, but in floating point the unit
    diagonal is lost next to raw entries of ``1 / eps`` (1e8 in float32, 1e16 in float64) and
    the LU can break down; ``inv_ex`` reports it without raising or syncing, and is correct
    under ``jacfwd``, ``vmap(jacfwd)`` and ``torch.compile`` (checked by the contract tests).
    """
    inverse, info = torch.linalg.inv_ex(a)
    return torch.where((info == 0)[..., None, None], inverse, torch.nan)


def _inverse_cayley(q: Tensor) -> Tensor:
    """The raw whose Cayley image is ``q`` (n x k, orthonormal columns); NaN where none is.

    With ``q = [Q₁; Q₂]`` (``Q₁`` the top k x k block) and ``K = (Q₁ + I)⁻¹``, the skew
    ``A = [[B, -Cᵀ], [C, 0]]`` has ``C = Q₂ K`` and ``B = I - 2K + CᵀC``; for square ``q``
    this is ``(Q - I)(Q + I)⁻¹``. Not differentiated, so ``inv_ex`` is safe here.
    """
    k = q.shape[-1]
    top, bottom = q[..., :k, :], q[..., k:, :]
    eye = eye_like(top)
    inverse, info = torch.linalg.inv_ex(top + eye)
    c = bottom @ inverse
    b = eye - 2 * inverse + c.mT @ c
    lower = torch.cat([torch.tril(b - b.mT, -1) / 2, c], dim=-2)
    return torch.where((info == 0)[..., None, None], lower, torch.nan)


def _householder(raw: Tensor) -> Tensor:
    """``-H₁ ⋯ H_k`` applied to the first k columns of I, reflectors from the raw columns."""
    n, k = raw.shape[-2:]
    vectors = torch.tril(raw, -1) + torch.eye(n, k, dtype=raw.dtype, device=raw.device)
    tau = 2 / vectors.square().sum(-2)
    return -torch.linalg.householder_product(vectors, tau)


def _inverse_householder(q: Tensor) -> Tensor:
    """The raw whose Householder image is ``q``: one reflector per column, left to right.

    ``q = -H₁ ⋯ H_k E`` gives ``q e₁ = -H₁ e₁``, so ``v₁ = (e₁ + q₁) / (1 + q₁₁)``; then
    ``H₁ q = -H₂ ⋯ H_k E`` and so on. NaN where a column is ``-e_j`` (out of reach).
    """
    n, k = q.shape[-2:]
    rows = torch.arange(n, device=q.device)
    columns = []
    m = q
    for j in range(k):
        x = torch.where(rows >= j, m[..., :, j], 0.0)
        v = (x + (rows == j).to(q.dtype)) / (1 + x[..., j : j + 1])
        tau = 2 / v.square().sum(-1)
        m = m - (tau[..., None] * v)[..., :, None] * (v[..., None, :] @ m)
        columns.append(torch.where(rows > j, v, 0.0))
    return torch.stack(columns, dim=-1)


def _log_rotation(q: Tensor, roots: int = 4, terms: int = 10) -> Tensor:
    """The strict lower triangle of the principal logarithm of rotations ``q``, in float64.

    Take ``roots`` principal square roots (the polar factor of ``I + X`` is ``X^(1/2)``), so
    every rotation angle is below pi / 16; then ``log X = 2 atanh(A)`` with the inverse Cayley
    transform ``A = (X - I)(X + I)⁻¹`` (norm below tan(pi / 32)), summed as a series. NaN for
    rotations with an eigenvalue -1 (no principal logarithm; the first square root fails).
    """
    x = q.to(torch.float64)
    u, _, vh = _guards.svd(x)
    x = u @ vh  # exactly orthogonal in float64
    eye = eye_like(x)
    target = x
    for i in range(roots):
        u, _, vh = _guards.svd(eye + x)
        x = u @ vh
        if i == 0:  # where I + Q is singular the polar factor is not a square root
            ok = ((x @ x - target).abs().amax((-2, -1)) < 1e-6)[..., None, None]
    a = torch.linalg.solve_ex(x + eye, x - eye, left=False)[0]
    a2 = a @ a
    term, total = a, a
    for j in range(1, terms):
        term = term @ a2
        total = total + term / (2 * j + 1)
    log = 2 ** (roots + 1) * total
    lower = torch.tril(log - log.mT, -1) / 2
    return torch.where(ok, lower, torch.nan).to(q.dtype)


_INVERSES = {"cayley": _inverse_cayley, "expm": _log_rotation, "householder": _inverse_householder}
