"""The law of the ``"linalg"`` capability: every ``fs.linalg`` rule equals the dense answer.

For a batch of raws, each function is compared with ``torch`` on ``structure.apply(raw)`` in
float64: products always; for square members, solves, inverse and log-determinant where the
member is well conditioned (condition number below ``1e-3 / eps`` of the dtype), and a finite
root only where it squares back to the member. The rule's batched answer must equal its
``vmap``; in float64 its gradients must equal the dense path's.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.func import grad, vmap

from .. import linalg
from .._rawform import leaves, map_raw
from ._laws import fail
from ._registry import register_law


def _close(got: Tensor, want: Tensor, scale: Tensor | float, tol: float) -> Tensor:
    """Per batch element (all but the trailing ``want.dim() - scale.dim()`` dims): within tol."""
    error = (got.double() - want).abs()
    return error <= tol * (1 + scale if isinstance(scale, float) else scale)


def _require(ok: Tensor, structure: Any, raw: Any, what: str, detail: str) -> None:
    if not bool(ok.all()):
        raise fail("linalg", structure, f"{what}: {detail}", raw)


def check_linalg(structure: Any, raw: Any, value: Tensor) -> None:
    """Check every ``fs.linalg`` function of ``structure`` at ``raw`` against the dense path.

    Complex members are refused (a ``TypeError`` naming the dtype): that is checked instead.
    """
    dtype = value.dtype
    if dtype.is_complex:
        try:
            linalg.diagonal(structure, raw)
        except TypeError as error:
            if "real members only" in str(error):
                return
        raise fail("linalg", structure, "complex members are not refused", raw)
    eps = torch.finfo(dtype).eps
    tol = 1e4 * eps if dtype == torch.float32 else 1e6 * eps
    dense = value.double()
    n, m = dense.shape[-2:]
    batch = dense.shape[:-2]
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(m, 3, generator=gen, dtype=torch.float64)
    size = dense.abs().amax((-2, -1), keepdim=True)

    got = linalg.matmul(structure, raw, x.to(dtype))
    want = dense @ x
    _require(
        _close(got, want, size * m, tol), structure, raw, "matmul", "differs from apply(raw) @ x"
    )
    got = linalg.linear(x.mT.to(dtype), structure, raw)
    _require(
        _close(got, want.mT, size.mT * m, tol), structure, raw, "linear", "differs from x @ W.mT"
    )
    want_diag = dense.diagonal(dim1=-2, dim2=-1)
    got = linalg.diagonal(structure, raw)
    _require(_close(got, want_diag, size[..., 0], tol), structure, raw, "diagonal", "differs")
    if n != m:
        return

    cond = torch.linalg.cond(dense)
    good = torch.isfinite(cond) & (cond * eps < 1e-3)
    b = torch.randn(n, 2, generator=gen, dtype=torch.float64)
    want_x = torch.linalg.solve(
        torch.where(good[..., None, None], dense, torch.eye(n, dtype=torch.float64)), b
    )
    got_x = linalg.solve(structure, raw, b.to(dtype))
    err = (got_x.double() - want_x).abs().amax((-2, -1)) / (1 + want_x.abs().amax((-2, -1)))
    _require(
        ~good | (err <= tol * cond),
        structure,
        raw,
        "solve",
        f"error {err.max():.3g} vs torch.linalg.solve",
    )
    sign, log = linalg.slogdet(structure, raw)
    want_sign, want_log = torch.linalg.slogdet(dense)
    same = (sign.double() == want_sign) & (
        (log.double() - want_log).abs()
        <= tol * n * (1 + want_log.abs()) * cond.clamp_max(1 / eps) ** 0.5
    )
    _require(~good | same, structure, raw, "slogdet", "differs from torch.linalg.slogdet")
    inverse = linalg.inv(structure, raw).double()
    residual = (inverse @ dense - torch.eye(n, dtype=torch.float64)).abs().amax((-2, -1))
    _require(
        ~good | (residual <= tol * cond),
        structure,
        raw,
        "inv",
        f"inv @ A - I up to {residual.max():.3g}",
    )
    v = b[:, 0].to(dtype)
    quad, logdet = linalg.inv_quad_logdet(structure, raw, v)
    want_quad = (v.double() * want_x[..., 0]).sum(-1)
    same = _close(quad, want_quad, want_quad.abs() * cond.clamp_max(1 / eps), tol)
    _require(~good | same, structure, raw, "inv_quad_logdet", "quadratic term differs")
    _require(
        ~good
        | (
            (logdet.double() - want_log).abs()
            <= tol * n * (1 + want_log.abs()) * cond.clamp_max(1 / eps) ** 0.5
        )
        | (want_sign < 0),
        structure,
        raw,
        "inv_quad_logdet",
        "log-determinant differs",
    )
    trace = linalg.trace(structure, raw)
    _require(
        _close(trace, want_diag.sum(-1), size[..., 0, 0] * n, tol),
        structure,
        raw,
        "trace",
        "differs",
    )

    r = linalg.root(structure, raw).double()
    finite = torch.isfinite(r).flatten(-2).all(-1)
    back = r @ r.mT
    _require(
        ~finite | ((back - dense).abs().amax((-2, -1)) <= tol * (1 + size[..., 0, 0]) * 10),
        structure,
        raw,
        "root",
        "a finite root does not square back to the member",
    )
    spd = (dense - dense.mT).abs().amax((-2, -1)) <= 1e-12 * (1 + size[..., 0, 0])
    spd = spd & (torch.linalg.eigvalsh(dense).amin(-1) > (1e-3 * size[..., 0, 0]))
    _require(
        ~spd | finite, structure, raw, "root", "NaN for a well-conditioned positive-definite member"
    )

    if batch:
        vmapped = (
            vmap(lambda r_: linalg.solve(structure, r_, b.to(dtype)))(raw)
            if len(batch) == 1
            else None
        )
        if vmapped is not None:
            same = (
                (vmapped == got_x)
                | (torch.isnan(vmapped) & torch.isnan(got_x))
                | ((vmapped - got_x).abs() <= tol * (1 + got_x.abs()))
            )
            _require(
                same.flatten(1).all(-1),
                structure,
                raw,
                "solve",
                "vmap differs from the batched call",
            )
    if dtype == torch.float64:
        _check_gradients(structure, raw, good, b)


def _check_gradients(structure: Any, raw: Any, good: Tensor, b: Tensor) -> None:
    """Gradients of a product, a solve and a log-determinant equal the dense path's.

    Checked on the well-conditioned batch elements only: a singular member's solve is
    non-finite, and so is any gradient through it.
    """
    if good.dim() > 1:
        return
    if good.dim() == 1:
        index = good.nonzero()[:, 0]
        if index.numel() == 0:
            return
        raw = map_raw(lambda t: t[index], raw)
    elif not bool(good):
        return

    def through_rules(r: Any) -> Tensor:
        total = linalg.matmul(structure, r, b).sum() + linalg.solve(structure, r, b).sum()
        return total + linalg.slogdet(structure, r)[1].sum()

    def through_dense(r: Any) -> Tensor:
        a = structure.apply(r)
        total = (a @ b).sum() + torch.linalg.solve(a, b).sum()
        return total + torch.linalg.slogdet(a)[1].sum()

    got = leaves(grad(through_rules)(raw))
    want = leaves(grad(through_dense)(raw))
    for g, w in zip(got, want, strict=True):
        if w.numel() == 0:
            continue
        scale = w.abs().max() + 1
        if not bool(((g - w).abs() <= 1e-6 * scale).all()):
            err = float((g - w).abs().max())
            raise fail(
                "linalg", structure, f"gradient differs from the dense path's by {err:.3g}", raw
            )


register_law("linalg", check_linalg, capability="linalg")
