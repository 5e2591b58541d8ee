"""The public functions of ``fs.linalg``: argument checks, then the structure's operator rules.

Each function takes a structure and a raw, builds the structure's operator (``_operator``, the
``"linalg"`` capability: a dense matrix for structures without one) and calls one rule. A tuple
of structures with a tuple of raws stands for the sum of their members.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from .._rawform import leaves
from .._structure import AbstractStructure, raw_form_of
from ._lowrank import Sum
from ._operators import Factor, Operator, nan_unless

Structures = AbstractStructure[Any] | tuple[AbstractStructure[Any], ...]


def _fail(
    structure: object, function: str, what: str, cls: type[Exception] = ValueError
) -> Exception:
    return cls(f"fs.linalg.{function}({structure!r}, ...): {what}")


def _finite(raw: Any, form: Any, extra: int) -> Tensor:
    """Per matrix of the batch: whether every raw entry behind it is finite.

    ``form`` is the declared raw form; ``extra`` the matrix dims a leaf's core leaves out
    (2 for an elementwise structure, 1 for a vector one).
    """
    if isinstance(raw, Tensor):
        return torch.isfinite(raw).flatten(raw.dim() - len(form) - extra).all(-1)
    ok: Tensor | None = None
    for leaf, core in zip(leaves(raw), leaves(form), strict=True):
        finite = torch.isfinite(leaf).flatten(leaf.dim() - len(core) - extra).all(-1)
        ok = finite if ok is None else ok & finite
    assert ok is not None
    return ok


def _one_operator(structure: Any, raw: Any, function: str) -> tuple[Operator, Tensor, Tensor]:
    if not isinstance(structure, AbstractStructure):
        expected = "a structure (such as fs.PositiveDefinite()) or a tuple of them"
        raise _fail(
            structure, function, f"expected {expected}, got {type(structure).__name__}.", TypeError
        )
    structure._check_raw(raw, f"linalg.{function}")
    form = raw_form_of(structure)
    extra = 2 - structure.core_ndim
    some = raw if isinstance(raw, Tensor) else next(leaves(raw))
    if some.is_complex():
        raise _fail(
            structure,
            function,
            f"takes real members only, got {str(some.dtype).removeprefix('torch.')} raw; for "
            "complex ones use torch.linalg on structure.apply(raw).",
            TypeError,
        )
    if some.dim() < extra + len(form if isinstance(raw, Tensor) else next(leaves(form))):
        raise _fail(
            structure,
            function,
            f"needs a raw whose value is a matrix, got shape {tuple(some.shape)}.",
        )
    # Non-finite entries need no zeroing first: the rules use no op that raises on them
    # (the _ex factorizations, triangular solves, FFT), and their batch elements are masked.
    return structure._operator(raw), _finite(raw, form, extra), some


def operator(
    structure: Structures, raw: Any, function: str = "operator"
) -> tuple[Operator, Tensor, Tensor]:
    """The operator of ``structure.apply(raw)``, the finite mask of its batch, and a raw tensor.

    Args:
      structure: a structure, or a tuple of structures standing for the sum of their members.
      raw: its raw (a tuple of raws for a tuple of structures).
      function: the public function asking, for messages.

    Returns:
      ``(operator, ok, like)``: ``ok`` is False for batch elements with a non-finite raw entry
      (their answers are NaN); ``like`` is a raw tensor, for dtype and device.
    """
    if not isinstance(structure, tuple):
        return _one_operator(structure, raw, function)
    if not structure:
        raise _fail(structure, function, "a tuple of structures needs at least one.")
    if not isinstance(raw, tuple) or len(raw) != len(structure):
        got = f"a tuple of {len(raw)}" if isinstance(raw, tuple) else type(raw).__name__
        raise _fail(
            structure,
            function,
            f"needs a tuple of {len(structure)} raws, one per structure, got {got}.",
            TypeError,
        )
    parts = [_one_operator(s, r, function) for s, r in zip(structure, raw, strict=True)]
    shapes = [p[0].shape for p in parts]
    if any(s != shapes[0] for s in shapes[1:]):
        raise _fail(structure, function, f"the members must have one shape, got {shapes}.")
    dtypes = [p[2].dtype for p in parts]
    if any(d != dtypes[0] for d in dtypes[1:]):
        raise _fail(structure, function, f"the raws must have one dtype, got {dtypes}.", TypeError)
    batches = [tuple(p[1].shape) for p in parts]
    try:
        torch.broadcast_shapes(*batches)
    except RuntimeError:
        raise _fail(
            structure, function, f"the raws' batch shapes do not broadcast: {batches}."
        ) from None
    ok = parts[0][1]
    for part in parts[1:]:
        ok = ok & part[1]
    return Sum([p[0] for p in parts]), ok, parts[0][2]


def _check_operand(structure: Any, function: str, name: str, x: Any, like: Tensor) -> None:
    if not isinstance(x, Tensor):
        raise _fail(
            structure,
            function,
            f"{name} must be a torch.Tensor, got {type(x).__name__}.",
            TypeError,
        )
    if x.dtype != like.dtype:
        raise _fail(
            structure,
            function,
            f"{name} must have the raw's dtype {like.dtype}, got {x.dtype}.",
            TypeError,
        )
    if x.device != like.device:
        raise _fail(
            structure,
            function,
            f"{name} must be on the raw's device {like.device}, got {x.device}.",
        )


def _square(structure: Any, function: str, op: Operator) -> int:
    rows, cols = op.shape
    if rows != cols:
        raise _fail(structure, function, f"needs square matrices, got {rows} x {cols}.")
    return rows


def matmul(structure: Structures, raw: Any, x: Tensor) -> Tensor:
    """``structure.apply(raw) @ x``, by the structure's product rule.

    Args:
      structure: a structure (or a tuple of them: the sum of their members).
      raw: its raw; leading dims are batch dims.
      x: a vector ``(m,)`` or matrices ``(..., m, k)``; batch dims broadcast as in ``torch.matmul``.

    Returns:
      ``(..., n)`` for a vector, ``(..., n, k)`` otherwise. NaN for batch elements whose raw
      has a non-finite entry.

    Example:
      >>> u, v = torch.ones(3, 1), torch.arange(3.0).unsqueeze(-1)
      >>> fs.linalg.matmul(fs.LowRank(1), (u, v), torch.ones(3))
      tensor([3., 3., 3.])
    """
    op, ok, like = operator(structure, raw, "matmul")
    _check_operand(structure, "matmul", "x", x, like)
    vector = x.dim() == 1
    x = x.unsqueeze(-1) if vector else x
    if x.dim() < 2 or x.shape[-2] != op.shape[1]:
        raise _fail(
            structure,
            "matmul",
            f"x needs {op.shape[1]} rows (the matrix is {op.shape[0]} x {op.shape[1]}), "
            f"got shape {tuple(x.shape)}.",
        )
    y = nan_unless(ok, op.matmul(x), 2)
    return y.squeeze(-1) if vector else y


def linear(x: Tensor, structure: Structures, raw: Any, bias: Tensor | None = None) -> Tensor:
    """``x @ W.mT + bias`` with ``W = structure.apply(raw)``: ``F.linear`` for structured weights.

    A ``LowRank`` weight is never formed: ``(x V) Uᵀ`` costs ``O((n + m) r)`` per row.

    Args:
      x: inputs ``(..., in_features)``.
      structure: the weight's structure; ``W`` is ``out_features x in_features``.
      raw: the weight's raw; batch dims broadcast with ``x``'s leading dims but the last.
      bias: optional ``(out_features,)`` (or broadcastable) bias.

    Returns:
      ``(..., out_features)``.

    Example:
      >>> u, v = torch.ones(2, 1), torch.ones(3, 1)
      >>> fs.linalg.linear(torch.ones(4, 3), fs.LowRank(1), (u, v)).shape
      torch.Size([4, 2])
    """
    op, ok, like = operator(structure, raw, "linear")
    _check_operand(structure, "linear", "x", x, like)
    if x.dim() < 1 or x.shape[-1] != op.shape[1]:
        raise _fail(
            structure,
            "linear",
            f"x needs {op.shape[1]} features in its last dim, got shape {tuple(x.shape)}.",
        )
    if x.dim() == 1:
        y = nan_unless(ok, op.matmul(x.unsqueeze(-1)), 2).squeeze(-1)
    else:
        y = nan_unless(ok, op.matmul(x.mT), 2).mT
    if bias is not None:
        _check_operand(structure, "linear", "bias", bias, like)
        y = y + bias
    return y


def _factor(
    structure: Structures, raw: Any, function: str
) -> tuple[Factor, Operator, Tensor, Tensor]:
    op, ok, like = operator(structure, raw, function)
    _square(structure, function, op)
    return op.factorize(), op, ok, like


def solve(structure: Structures, raw: Any, b: Tensor) -> Tensor:
    """``torch.linalg.solve(structure.apply(raw), b)``, by the structure's rule.

    Shapes follow ``torch.linalg.solve``: ``b`` is a batch of vectors when it has one dim, or
    when its shape is the matrices' shape without the last dim; matrices ``(..., n, k)``
    otherwise, with batch dims broadcast.

    A singular member gives NaN (``torch.linalg.solve`` raises), for that batch element only:
    an exactly zero pivot in the dense rule, a zero on the diagonal, a rank below ``n`` by
    construction (``LowRank``, ``PositiveSemidefinite(rank=r)`` with ``r < n``). A member that
    is nonsingular but ill-conditioned gives what LU gives: the solution to its rounding.

    Example:
      >>> fs.linalg.solve(fs.Diagonal(packed=True), torch.tensor([2.0, 4.0]), torch.ones(2))
      tensor([0.5000, 0.2500])
    """
    factor, op, ok, like = _factor(structure, raw, "solve")
    _check_operand(structure, "solve", "b", b, like)
    n = op.shape[0]
    vector = b.dim() == 1 or (b.dim() == ok.dim() + 1 and b.shape == (*ok.shape, n))
    b = b.unsqueeze(-1) if vector else b
    if b.dim() < 2 or b.shape[-2] != n:
        raise _fail(structure, "solve", f"b needs {n} rows, got shape {tuple(b.shape)}.")
    x = nan_unless(ok, factor.solve(b), 2)
    return x.squeeze(-1) if vector else x


def slogdet(structure: Structures, raw: Any) -> tuple[Tensor, Tensor]:
    """``torch.linalg.slogdet(structure.apply(raw))``: ``(sign, log|det|)``, by its rule.

    Example:
      >>> fs.linalg.slogdet(fs.Diagonal(packed=True), torch.tensor([-2.0, 4.0]))
      (tensor(-1.), tensor(2.0794))
    """
    return _slogdet(structure, raw, "slogdet")


def _slogdet(structure: Structures, raw: Any, function: str) -> tuple[Tensor, Tensor]:
    factor, _, ok, _ = _factor(structure, raw, function)
    sign, log = factor.slogdet()
    return nan_unless(ok, sign, 0), nan_unless(ok, log, 0)


def logdet(structure: Structures, raw: Any) -> Tensor:
    """``torch.logdet(structure.apply(raw))``: NaN for a negative determinant, -inf for zero.

    Example:
      >>> fs.linalg.logdet(fs.Diagonal(packed=True), torch.tensor([2.0, 4.0]))
      tensor(2.0794)
    """
    sign, log = _slogdet(structure, raw, "logdet")
    return log + torch.where(sign < 0, math.nan, 0.0)


def inv_quad_logdet(structure: Structures, raw: Any, b: Tensor) -> tuple[Tensor, Tensor]:
    """``(bᵀ A⁻¹ b, log det A)`` for ``A = structure.apply(raw)``, from one factorization.

    The two terms of a Gaussian log-likelihood. ``b`` is a batch of vectors ``(..., n)``
    (batch dims broadcast with the raw's); the first answer has the broadcast batch shape, the
    second the raw's. Equal to ``((b * solve(s, raw, b)).sum(-1), logdet(s, raw))``.

    Example:
      >>> d = torch.tensor([2.0, 4.0])
      >>> fs.linalg.inv_quad_logdet(fs.Diagonal(packed=True), d, torch.ones(2))
      (tensor(0.7500), tensor(2.0794))
    """
    factor, op, ok, like = _factor(structure, raw, "inv_quad_logdet")
    _check_operand(structure, "inv_quad_logdet", "b", b, like)
    n = op.shape[0]
    if b.dim() < 1 or b.shape[-1] != n:
        raise _fail(
            structure,
            "inv_quad_logdet",
            f"b needs {n} entries in its last dim, got shape {tuple(b.shape)}.",
        )
    quad = factor.inv_quad(b)
    sign, log = factor.slogdet()
    log = log + torch.where(sign < 0, math.nan, 0.0)
    return nan_unless(ok, quad, 0), nan_unless(ok, log, 0)


def inv(structure: Structures, raw: Any) -> Tensor:
    """``torch.linalg.inv(structure.apply(raw))``; NaN for a singular member (see :func:`solve`).

    Example:
      >>> fs.linalg.inv(fs.Diagonal(packed=True), torch.tensor([2.0, 4.0]))
      tensor([[0.5000, 0.0000],
              [0.0000, 0.2500]])
    """
    factor, _, ok, _ = _factor(structure, raw, "inv")
    return nan_unless(ok, factor.inv(), 2)


inverse = inv


def diagonal(structure: Structures, raw: Any) -> Tensor:
    """``structure.apply(raw).diagonal(dim1=-2, dim2=-1)``, without forming the matrix where it can.

    Example:
      >>> fs.linalg.diagonal(fs.Circulant(packed=True), torch.tensor([1.0, 2.0, 3.0]))
      tensor([1., 1., 1.])
    """
    op, ok, _ = operator(structure, raw, "diagonal")
    return nan_unless(ok, op.diagonal(), 1)


def trace(structure: Structures, raw: Any) -> Tensor:
    """The sum of the diagonal of ``structure.apply(raw)``.

    Example:
      >>> fs.linalg.trace(fs.Circulant(packed=True), torch.tensor([1.0, 2.0, 3.0]))
      tensor(3.)
    """
    return diagonal(structure, raw).sum(-1)


def root(structure: Structures, raw: Any) -> Tensor:
    """A matrix ``R`` with ``R @ R.mT == structure.apply(raw)``, for symmetric PSD members.

    A Cholesky factor by default; the structure's own factor where it has one (``F`` for
    ``PositiveSemidefinite(rank=r)``, ``[sqrt(D) F]`` for a diagonal plus ``F Fᵀ``, so ``R``
    may have more or fewer columns than rows). NaN where no root exists (a member that is not
    symmetric positive semidefinite; for the Cholesky rule, not positive definite).

    Example:
      >>> fs.linalg.root(fs.Diagonal(packed=True), torch.tensor([4.0, 9.0]))
      tensor([[2., 0.],
              [0., 3.]])
    """
    op, ok, _ = operator(structure, raw, "root")
    _square(structure, "root", op)
    return nan_unless(ok, op.root().dense(), 2)


def sample(
    structure: Structures,
    raw: Any,
    sample_shape: Sequence[int] = (),
    *,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Draws from the zero-mean Gaussian with covariance ``structure.apply(raw)``.

    ``root(structure, raw) @ z`` for standard normal ``z``, through the root's own product
    (``O(n r)`` per draw for a diagonal plus ``F Fᵀ``). Under ``vmap`` pass
    ``randomness="different"`` (or draw ``z`` yourself and use :func:`root`).

    Returns:
      ``(*sample_shape, *batch, n)``.

    Example:
      >>> gen = torch.Generator().manual_seed(0)
      >>> fs.linalg.sample(fs.Diagonal(packed=True), torch.ones(3), (5,), generator=gen).shape
      torch.Size([5, 3])
    """
    op, ok, like = operator(structure, raw, "sample")
    _square(structure, "sample", op)
    r = op.root()
    shape = (*tuple(sample_shape), *ok.shape, r.shape[1], 1)
    z = torch.randn(shape, generator=generator, dtype=like.dtype, device=like.device)
    return nan_unless(ok, r.matmul(z), 2).squeeze(-1)


_ASKS = {
    "matmul": ("matmul",),
    "linear": ("matmul",),
    "solve": ("solve",),
    "slogdet": ("logdet",),
    "logdet": ("logdet",),
    "inv_quad_logdet": ("solve", "logdet"),
    "inv": ("inv",),
    "inverse": ("inv",),
    "diagonal": ("diagonal",),
    "trace": ("diagonal",),
    "root": ("root",),
    "sample": ("root",),
}


def method(structure: Structures, function: str, shape: Sequence[int] | None = None) -> str:
    """Which rule ``fs.linalg.<function>`` runs for ``structure``, and its cost.

    Args:
      structure: a structure, or a tuple of them (a sum).
      function: a function name of ``fs.linalg`` (``"solve"``, ``"logdet"``, ...).
      shape: the member's core shape the question is about (rules may depend on it); by
        default the smallest square ``n x n`` with ``n`` a power of two from 4 that the
        structure accepts.

    Example:
      >>> fs.linalg.method(fs.Circulant(packed=True), "solve")
      'circulant: FFT, O(n log n k)'
    """
    if function not in _ASKS:
        raise _fail(structure, "method", f"no function {function!r}; one of {sorted(_ASKS)}.")
    parts = structure if isinstance(structure, tuple) else (structure,)
    shapes = [tuple(shape)] if shape is not None else [(n, n) for n in (4, 8, 16, 32, 64, 128)]
    for i, core in enumerate(shapes):
        try:
            raws = tuple(p.init(core, dtype=torch.float64) for p in parts)
            break
        except ValueError:
            if shape is not None or i == len(shapes) - 1:
                raise
    op, _, _ = operator(structure, raws if isinstance(structure, tuple) else raws[0], "method")
    return "; ".join(op.rule(name) for name in _ASKS[function])


__all__ = [
    "diagonal",
    "inv",
    "inv_quad_logdet",
    "inverse",
    "linear",
    "logdet",
    "matmul",
    "method",
    "operator",
    "root",
    "sample",
    "slogdet",
    "solve",
    "trace",
]
