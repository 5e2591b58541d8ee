"""Log-det Jacobians: the closed forms against the dense Jacobian and against torch's pair.

For each structure with the capability, one batch of raws: ``apply`` alone (the base),
``forward_and_log_det`` (value and log-det), and the log-det a user would otherwise compute,
``slogdet`` of the dense Jacobian read in the same coordinates (``jacfwd`` per matrix, then
an O(d³) determinant with ``d = n(n+1)/2``). For ``Correlation`` also torch's own
``CorrCholeskyTransform`` (a different map, to the Cholesky factor only) for scale.
"""

from __future__ import annotations

import torch
from _timing import report, timed
from torch.func import jacfwd

import functional_struct as fs


def _dense_log_det(structure, raw):
    def one(r):
        value = structure.apply(r)
        jacobian = jacfwd(structure.apply)(r)
        tangents = jacobian.reshape(value.numel(), r.numel()).T.reshape(r.numel(), *value.shape)
        return torch.linalg.slogdet(structure._log_det_coordinates(value, tangents))[1]

    return torch.stack([one(r) for r in raw])


def log_det_costs(n: int, batch: int, rounds: int) -> None:
    gen = torch.Generator().manual_seed(0)
    cases = {
        "PositiveDefinite(packed)": fs.PositiveDefinite(packed=True),
        "PositiveDefinite(expm, packed)": fs.PositiveDefinite(method="expm", packed=True),
        "Correlation(packed)": fs.Correlation(packed=True),
        "SpecialOrthogonal(packed)": fs.SpecialOrthogonal(packed=True),
    }
    for name, structure in cases.items():
        raw = structure.init((batch, n, n), generator=gen)
        variants = {
            "apply": lambda s=structure, r=raw: s.apply(r),
            "forward_and_log_det": lambda s=structure, r=raw: s.forward_and_log_det(r),
        }
        if name == "Correlation(packed)":
            transform = torch.distributions.transforms.CorrCholeskyTransform()
            variants["torch CorrCholeskyTransform + log-det"] = lambda t=transform, r=raw: (
                t.log_abs_det_jacobian(r, t(r))
            )
        samples = timed(variants, rounds)
        dense = timed(
            {"dense Jacobian slogdet": lambda s=structure, r=raw: _dense_log_det(s, r)},
            max(2, rounds // 3),
            warmup=1,
        )
        samples.update(dense)
        report("Log-det Jacobian", f"{name}, n={n}, batch {batch}", samples, "apply")


def run(quick: bool, rounds: int) -> None:
    for n in [8] if quick else [8, 32]:
        log_det_costs(n, 64, rounds)
