"""The law of the ``"log_det"`` capability: the closed-form log-det is the Jacobian's.

For a batch of raws, in float64:

- ``forward_and_log_det``'s value is ``apply(raw)``;
- its log-det equals ``log|det|`` of ``jacfwd(apply)`` read in the structure's free coordinates
  (``_log_det_coordinates``), to ``1e-8`` relative, plus what the reference itself can be
  trusted to: ``d · eps · cond(J)`` (a Jacobian with singular values far apart, as near the
  edge of a range, has an inaccurate dense determinant, not an inaccurate closed form);
- ``inverse_and_log_det`` of the value gives the raw back (for raw entries up to 2; past
  that an ill-conditioned member, such as a factor with -5 everywhere, loses raw digits in
  any inverse) and the negative log-det, and always a raw whose image is the value;
- the batched answer equals ``vmap``'s, and the log-det's ``grad`` and ``jacfwd`` equal a
  central finite difference.

In the raw's own dtype the log-det must agree with the float64 one (``1e-3`` relative in
float32).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.func import grad, jacfwd, vmap

from ._laws import fail, real_view, widen
from ._registry import register_law

_ELEMENTS = 4
"""Batch elements whose Jacobian is formed densely (the rest are covered by ``vmap``)."""

_RECOVERABLE = 2.0
"""Raw entries up to this size must come back from ``inverse`` in float64."""

EDGE = 5.0
"""The raw scale (normal draws, so entries up to about 15) of the law's edge run.

Past it the float64 reference, not the closed form, loses digits: torch's forward-mode
derivatives of ``softmax`` and ``sigmoid`` form ``p (1 - p)``, which cancels once ``p`` is
within ``e^-15`` of 1 (``1e-5`` relative at logits 25 apart), while the closed forms are sums
of ``log_softmax``/``logsigmoid`` terms and stay exact.
"""


def _require(ok: Any, structure: Any, raw: Any, what: str) -> None:
    if not bool(torch.as_tensor(ok).all()):
        raise fail("log_det", structure, what, raw)


def _reference(structure: Any, raw: Tensor, value: Tensor) -> tuple[Tensor, Tensor]:
    """``log|det|`` of the dense Jacobian in the free coordinates, and its condition number.

    For complex raws, in their real and imaginary parts (coordinates too).
    """
    fn, flat = _real_map(structure.apply, raw)
    d = flat.numel()
    jacobian = jacfwd(fn)(flat)
    value_core = jacobian.shape[: jacobian.dim() - flat.dim()]
    tangents = jacobian.reshape(value_core.numel(), d).T.reshape(d, *value_core)
    if raw.is_complex():
        tangents = torch.view_as_complex(tangents.contiguous())
    coordinates = structure._log_det_coordinates(value, tangents)
    if coordinates.is_complex():
        coordinates = torch.view_as_real(coordinates).reshape(d, -1)
    if coordinates.shape != (d, d):
        raise ValueError(
            f"_log_det_coordinates gives {tuple(coordinates.shape[1:])} coordinates for "
            f"{d} raw entries; a bijection needs as many"
        )
    return torch.linalg.slogdet(coordinates)[1], torch.linalg.cond(coordinates)


def _real_map(fn: Callable[[Tensor], Tensor], raw: Tensor) -> tuple[Any, Tensor]:
    """``fn`` as a map of real tensors (``view_as_real`` for complex ones), and ``raw`` so.

    torch.func differentiates real tensors only.
    """
    if not raw.is_complex():
        return fn, raw

    def real_fn(r: Tensor) -> Tensor:
        return real_view(fn(torch.view_as_complex(r)))

    return real_fn, torch.view_as_real(raw)


def check_log_det(structure: Any, raw: Any, value: Tensor) -> None:
    """Check ``forward_and_log_det``/``inverse_and_log_det`` of ``structure`` at ``raw``."""
    raw64 = widen(raw)
    value64, log_det = structure.forward_and_log_det(raw64)
    want = structure.apply(raw64)
    scale = 1 + want.abs()
    _require((value64 - want).abs() <= 1e-9 * scale, structure, raw, "value differs from apply")
    batch = log_det.shape
    core = raw64.shape[len(batch) :]
    _require(torch.isfinite(log_det), structure, raw, "log_det is not finite")
    _require(not log_det.is_complex(), structure, raw, "log_det is complex (it is a real number)")

    _, in_dtype = structure.forward_and_log_det(raw)
    tol = 1e-3 if raw.dtype in (torch.float32, torch.complex64) else 1e-8
    err = (in_dtype.double() - log_det).abs()
    _require(
        err <= tol * (1 + log_det.abs()),
        structure,
        raw,
        f"log_det in {raw.dtype} differs from float64 by {err.max():.3g}",
    )

    count = batch.numel()
    flat = raw64.reshape(count, *core)
    values = value64.reshape(count, *value64.shape[len(batch) :])
    log_dets = log_det.reshape(-1)
    d = core.numel()
    eps = torch.finfo(torch.float64).eps
    for k in range(min(len(flat), _ELEMENTS) if d else 0):
        ref, cond = _reference(structure, flat[k], values[k])
        err = (log_dets[k] - ref).abs()
        # A singular dense Jacobian (cond inf) is the reference underflowing (sigmoid'(90) is
        # 0 in float64): no bijection has one, and it gives no bound.
        bound = 1e-8 * (1 + ref.abs()) + d * eps * cond.nan_to_num(torch.inf)
        _require(
            (err <= bound) | torch.isinf(bound),
            structure,
            flat[k],
            f"log_det {float(log_dets[k]):.12g} but log|det| of the Jacobian in the free "
            f"coordinates is {float(ref):.12g} (error {float(err):.3g}, allowed "
            f"{float(bound):.3g}, condition {float(cond):.3g})",
        )
    if d == 0:
        _require(log_det == 0, structure, raw, "no free coordinates, but log_det is not 0")

    back, negative = structure.inverse_and_log_det(value64)
    image = structure.apply(back)
    _require(
        (image - value64).abs() <= 1e-7 * (1 + value64.abs()),
        structure,
        raw,
        "apply(inverse_and_log_det(value)[0]) differs from value",
    )
    flat_back = back.reshape(count, *core)
    size = flat.abs().reshape(count, d).amax(-1) if d else torch.zeros(count, dtype=torch.float64)
    recoverable = size <= _RECOVERABLE
    same = ((flat_back - flat).abs() <= 1e-6 * (1 + flat.abs())).reshape(count, d).all(-1)
    _require(same | ~recoverable, structure, raw, "inverse_and_log_det does not give the raw back")
    exact = ((flat_back - flat).abs() <= 1e-12 * (1 + flat.abs())).reshape(count, d).all(-1)
    _require(
        ((negative.reshape(-1) + log_dets).abs() <= 1e-8 * (1 + log_dets.abs())) | ~exact,
        structure,
        raw,
        "inverse_and_log_det's log-det is not the negative of forward_and_log_det's",
    )

    if batch:
        mapped = vmap(structure.forward_and_log_det)(flat)[1]
        _require(
            (mapped - log_dets).abs() <= 1e-10 * (1 + log_dets.abs()),
            structure,
            raw,
            "the batched log_det differs from vmap's",
        )

    if d:
        _check_derivatives(structure, flat[0])


def _check_derivatives(structure: Any, raw: Tensor) -> None:
    """``grad`` and ``jacfwd`` of the log-det against a central difference along one direction."""

    def log_det_of(r: Tensor) -> Tensor:
        return structure.forward_and_log_det(r)[1]

    log_det, raw = _real_map(log_det_of, raw)
    gen = torch.Generator().manual_seed(0)
    direction = torch.randn(raw.shape, generator=gen, dtype=raw.dtype)
    h = 1e-5 * (1 + raw.abs().max())
    difference = (log_det(raw + h * direction) - log_det(raw - h * direction)) / (2 * h)
    for name, derivative in (("grad", grad(log_det)(raw)), ("jacfwd", jacfwd(log_det)(raw))):
        got = (derivative * direction).sum()
        err = (got - difference).abs()
        _require(
            torch.isfinite(got) & (err <= 1e-5 * (1 + difference.abs())),
            structure,
            raw,
            f"{name} of log_det along a direction is {float(got):.8g}, a central difference "
            f"gives {float(difference):.8g}",
        )


register_law("log_det", check_log_det, capability="log_det", edge=EDGE)
