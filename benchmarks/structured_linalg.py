"""fs.linalg against the dense path, hand-written rules, linear_operator and CoLA.

Every case is float64 on the CPU, timed side by side in one process (``_timing.timed``). Peak
memory is the growth of the resident set while one step runs, measured in a fresh process per
variant (``peak_memory``): CPU tensors have no allocator statistics in torch.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import warnings

import torch
from _timing import ROWS, report, timed
from torch.func import grad, vmap

import functional_struct as fs
from functional_struct import linalg

try:
    import linear_operator
    from linear_operator.operators import DiagLinearOperator, LowRankRootLinearOperator
except ImportError:  # the optional `bench` extra
    linear_operator = None

try:
    import cola
except ImportError:  # the optional `bench` extra
    cola = None

F64 = torch.float64

# torch 2.13's inductor calls a deprecated helper of its own when it lowers `diagonal`.
warnings.filterwarnings("ignore", message="`torch._prims_common.check` is deprecated")
COVARIANCE = (fs.PositiveSemidefinite(rank=16), fs.Chain(fs.Positive(), fs.Diagonal(packed=True)))


def _softplus(x):
    return torch.nn.functional.softplus(x)


# ---------------------------------------------------------------------- Gaussian likelihood
def gaussian_nll(n: int, batch: int, rounds: int) -> None:
    """Forward + backward of the NLL of N(0, F Fᵀ + diag(softplus(d))) at ``n``, rank 16."""
    gen = torch.Generator().manual_seed(0)
    factor = torch.randn(batch, n, 16, generator=gen, dtype=F64).requires_grad_()
    raw_d = torch.randn(batch, n, generator=gen, dtype=F64).requires_grad_()
    x = torch.randn(batch, n, generator=gen, dtype=F64)
    structure = (
        fs.PositiveSemidefinite(rank=16),
        fs.Chain(fs.Positive(), fs.Diagonal(packed=True)),
    )

    def fs_step():
        quad, logdet = linalg.inv_quad_logdet(structure, (factor, raw_d), x)
        (quad + logdet).sum().backward()

    def hand_step():
        d = _softplus(raw_d)
        inv_d_f = factor / d.unsqueeze(-1)
        cap = torch.eye(16, dtype=F64) + factor.mT @ inv_d_f
        chol = torch.linalg.cholesky(cap)
        inv_d_x = x / d
        inner = torch.cholesky_solve((factor.mT @ inv_d_x.unsqueeze(-1)), chol).squeeze(-1)
        quad = (x * inv_d_x).sum(-1) - (
            inner * (factor.mT @ inv_d_x.unsqueeze(-1)).squeeze(-1)
        ).sum(-1)
        logdet = d.log().sum(-1) + 2 * chol.diagonal(dim1=-2, dim2=-1).log().sum(-1)
        (quad + logdet).sum().backward()

    def dense_step():
        cov = factor @ factor.mT + torch.diag_embed(_softplus(raw_d))
        chol = torch.linalg.cholesky(cov)
        quad = (x * torch.cholesky_solve(x.unsqueeze(-1), chol).squeeze(-1)).sum(-1)
        logdet = 2 * chol.diagonal(dim1=-2, dim2=-1).log().sum(-1)
        (quad + logdet).sum().backward()

    variants = {"fs.linalg (Woodbury)": fs_step, "hand-written Woodbury": hand_step}
    notes = []
    if linear_operator is not None:

        def lo_step():
            op = LowRankRootLinearOperator(factor) + DiagLinearOperator(_softplus(raw_d))
            quad, logdet = op.inv_quad_logdet(x.unsqueeze(-1), logdet=True)
            (quad + logdet).sum().backward()

        variants["linear_operator 0.6.1"] = lo_step
    else:
        notes.append("linear_operator absent")
    if cola is not None and n <= 512:

        def cola_step():
            d = _softplus(raw_d)
            total = 0
            for i in range(batch):  # CoLA operators are unbatched
                # Sum and Product spelled out: `+` is ambiguous in plum's dispatch for 0.0.7.
                low = cola.ops.Product(cola.ops.Dense(factor[i]), cola.ops.Dense(factor[i].mT))
                op = cola.PSD(cola.ops.Sum(cola.ops.Diagonal(d[i]), low))
                solved = cola.inv(op) @ x[i]
                total = total + (x[i] * solved).sum() + cola.logdet(op)
            total.backward()

        slow_variants = {"CoLA 0.0.7": cola_step}
    else:
        slow_variants = {}
        # Measured: one CoLA step did not finish within 300 s at n = 1024.
        notes.append("CoLA absent" if cola is None else "CoLA not run (over 300 s a step at 1024)")
    slow_variants["dense (form, Cholesky)"] = dense_step
    case = f"n={n}, r=16, batch {batch}, fwd+bwd"
    samples = timed(variants, rounds)
    # The slow ones in fewer rounds: their ratios are ratios of medians.
    samples.update(timed(slow_variants, max(2, rounds // 3), warmup=1))
    report("Gaussian NLL", case, samples, "hand-written Woodbury", "; ".join(notes))

    # The same step under vmap(grad) and compiled, where linear_operator raises.
    def member_nll(f, d, xb):
        quad, logdet = linalg.inv_quad_logdet(COVARIANCE, (f, d), xb)
        return quad + logdet

    step = vmap(grad(member_nll, argnums=(0, 1)))
    compiled = torch.compile(step, fullgraph=True)
    f0, d0 = factor.detach(), raw_d.detach()
    compiled(f0, d0, x)
    transformed = timed(
        {
            "fs vmap(grad)": lambda: step(f0, d0, x),
            "fs vmap(grad), compiled": lambda: compiled(f0, d0, x),
        },
        rounds,
    )
    note = ""
    if linear_operator is not None:

        def lo_member(f, d, xb):
            op = LowRankRootLinearOperator(f) + DiagLinearOperator(_softplus(d))
            quad, logdet = op.inv_quad_logdet(xb.unsqueeze(-1), logdet=True)
            return quad + logdet

        try:
            vmap(grad(lo_member, argnums=(0, 1)))(f0, d0, x)
            note = "linear_operator runs under vmap(grad)"
        except Exception as error:  # noqa: BLE001 - what it raises is the finding
            note = f"linear_operator under vmap(grad) raises {type(error).__name__}"
    transformed["hand-written Woodbury"] = samples["hand-written Woodbury"]
    report("Gaussian NLL", case + ", transforms", transformed, "hand-written Woodbury", note)
    peak_memory(
        "Gaussian NLL",
        case,
        {"fs.linalg (Woodbury)": "nll-fs", "dense (form, Cholesky)": "nll-dense"},
        n,
        batch,
    )


def _memory_step(kind: str, n: int, batch: int):
    """The step whose peak memory ``peak_memory`` measures, with its inputs made."""
    gen = torch.Generator().manual_seed(0)
    if kind.startswith("nll"):
        f = torch.randn(batch, n, 16, generator=gen, dtype=F64).requires_grad_()
        d = torch.randn(batch, n, generator=gen, dtype=F64).requires_grad_()
        x = torch.randn(batch, n, generator=gen, dtype=F64)
        if kind == "nll-fs":
            return lambda: sum(linalg.inv_quad_logdet(COVARIANCE, (f, d), x)).sum().backward()

        def dense():
            c = torch.linalg.cholesky(f @ f.mT + torch.diag_embed(_softplus(d)))
            quad = (x * torch.cholesky_solve(x.unsqueeze(-1), c).squeeze(-1)).sum(-1)
            (quad + 2 * c.diagonal(dim1=-2, dim2=-1).log().sum(-1)).sum().backward()

        return dense
    s = fs.LowRank(16)
    u, v = (t.requires_grad_() for t in s.init((n, n), generator=gen, dtype=F64))
    x = torch.randn(batch, n, generator=gen, dtype=F64)
    if kind == "layer-fs":
        return lambda: linalg.linear(x, s, (u, v)).square().sum().backward()
    return lambda: (x @ s.apply((u, v)).mT).square().sum().backward()


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith(field + ":"))
    return int(line.split()[1])


def _child(kind: str, n: int, batch: int) -> None:
    """In a fresh process: how far one step raises the resident set above where it started.

    The peak (``VmHWM``) is reset just before the step by writing 5 to ``clear_refs``; a
    first step runs before, so that lazy initializations are not counted.
    """
    step = _memory_step(kind, n, batch)
    step()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = _status_kib("VmRSS")
    step()
    print(max(0, _status_kib("VmHWM") - before))


def peak_memory(section: str, case: str, kinds: dict[str, str], n: int, batch: int) -> None:
    """Peak resident-set growth of one step of each ``kinds`` variant, each in a fresh process.

    Linux only (``/proc``); elsewhere the section says so and skips.
    """
    if not os.path.exists("/proc/self/clear_refs"):
        print(f"| {section} peak memory | {case} | skipped: needs Linux /proc | | | |")
        return
    here = os.path.dirname(os.path.abspath(__file__))
    sizes = {}
    for name, kind in kinds.items():
        code = f"import structured_linalg as b; b._child({kind!r}, {n}, {batch})"
        out = subprocess.run(
            [sys.executable, "-c", code], cwd=here, capture_output=True, text=True, check=True
        )
        sizes[name] = int(out.stdout.split()[-1]) / 1024
    base = min(sizes, key=lambda k: sizes[k])
    for name, mib in sizes.items():
        row = {"section": section + " peak memory", "case": case, "variant": name}
        ROWS.append({**row, "peak_mib": mib})
        ratio = mib / max(sizes[base], 0.1)
        print(
            f"| {section} peak memory | {case} | {name} | {mib:9.1f} MiB | {ratio:6.1f}x {base} | |"
        )


# ----------------------------------------------------------------------- FFT structures
def circulant_solve(n: int, rounds: int) -> None:
    gen = torch.Generator().manual_seed(0)
    row = torch.randn(n, generator=gen, dtype=F64)
    row[0] += 2 * math.sqrt(n)  # well conditioned
    b = torch.randn(n, generator=gen, dtype=F64)
    s = fs.Circulant(packed=True)

    def hand():
        return torch.fft.irfft(torch.fft.rfft(b) / torch.fft.rfft(row).conj(), n=n)

    samples = timed(
        {"fs.linalg.solve (FFT)": lambda: linalg.solve(s, row, b), "hand-written FFT solve": hand},
        rounds,
    )
    samples.update(
        timed(
            {"dense (apply, torch.linalg.solve)": lambda: torch.linalg.solve(s.apply(row), b)},
            max(2, rounds // 3),
            warmup=1,
        )
    )
    report("Circulant solve", f"n={n}, vector b", samples, "hand-written FFT solve")


def toeplitz_matmul(n: int, rounds: int) -> None:
    gen = torch.Generator().manual_seed(0)
    diagonals = torch.randn(2 * n - 1, generator=gen, dtype=F64)
    x = torch.randn(n, generator=gen, dtype=F64)
    s = fs.Toeplitz(packed=True)
    samples = timed(
        {
            "fs.linalg.matmul (FFT)": lambda: linalg.matmul(s, diagonals, x),
            "apply + dense matmul": lambda: s.apply(diagonals) @ x,
        },
        rounds,
    )
    report("Toeplitz matmul", f"n={n}, vector x", samples, "fs.linalg.matmul (FFT)")


# ------------------------------------------------------------------------------ Kronecker
def kronecker(side: int, rounds: int) -> None:
    s = fs.Kronecker(fs.PositiveDefinite(), fs.PositiveDefinite(), sizes=(side, side))
    raw = s.init((side * side, side * side), generator=torch.Generator().manual_seed(0), dtype=F64)
    b = torch.randn(side * side, dtype=F64)

    def structured():
        return linalg.logdet(s, raw), linalg.solve(s, raw, b)

    def dense():
        a = s.apply(raw)
        return torch.logdet(a), torch.linalg.solve(a, b)

    samples = timed(
        {"fs.linalg (per factor)": structured, "dense (apply, logdet, solve)": dense}, rounds
    )
    report(
        "Kronecker PD x PD",
        f"n={side * side} ({side} x {side}), logdet + solve",
        samples,
        "fs.linalg (per factor)",
    )


# --------------------------------------------------------------------------- low-rank layer
def low_rank_layer(n: int, batch: int, rounds: int) -> None:
    s = fs.LowRank(16)
    gen = torch.Generator().manual_seed(0)
    left, right = (t.requires_grad_() for t in s.init((n, n), generator=gen, dtype=F64))
    x = torch.randn(batch, n, generator=gen, dtype=F64)

    def structured():
        linalg.linear(x, s, (left, right)).square().sum().backward()

    def dense():
        (x @ s.apply((left, right)).mT).square().sum().backward()

    samples = timed({"fs.linalg.linear": structured, "apply + matmul": dense}, rounds)
    case = f"{n} x {n}, r=16, batch {batch}, fwd+bwd"
    report("LowRank layer", case, samples, "fs.linalg.linear")
    peak_memory(
        "LowRank layer",
        case,
        {"fs.linalg.linear": "layer-fs", "apply + matmul": "layer-dense"},
        n,
        batch,
    )


# ------------------------------------------------------------------- orthogonal and PD
def orthogonal_solve(n: int, batch: int, rounds: int) -> None:
    s = fs.Orthogonal()
    raw = s.init((batch, n, n), generator=torch.Generator().manual_seed(0), dtype=F64)
    b = torch.randn(batch, n, 8, dtype=F64)
    samples = timed(
        {
            "fs.linalg.solve (Qᵀ b)": lambda: linalg.solve(s, raw, b),
            "apply, then Q.mT @ b": lambda: s.apply(raw).mT @ b,
            "apply, then torch.linalg.solve": lambda: torch.linalg.solve(s.apply(raw), b),
        },
        rounds,
    )
    report("Orthogonal solve", f"n={n}, batch {batch}, 8 columns", samples, "apply, then Q.mT @ b")


def positive_definite_inv_quad_logdet(n: int, batch: int, rounds: int) -> None:
    s = fs.PositiveDefinite()
    raw = s.init(
        (batch, n, n), generator=torch.Generator().manual_seed(0), dtype=F64
    ).requires_grad_()
    b = torch.randn(batch, n, dtype=F64)

    def structured():
        quad, logdet = linalg.inv_quad_logdet(s, raw, b)
        (quad + logdet).sum().backward()

    def dense():
        a = s.apply(raw)
        quad = (b * torch.linalg.solve(a, b)).sum(-1)
        (quad + torch.logdet(a)).sum().backward()

    samples = timed(
        {"fs.linalg (one Cholesky)": structured, "torch.logdet + torch.linalg.solve": dense}, rounds
    )
    report(
        "PD inv_quad_logdet",
        f"n={n}, batch {batch}, fwd+bwd (apply included)",
        samples,
        "fs.linalg (one Cholesky)",
    )


def run(quick: bool, rounds: int) -> None:
    """Every fs.linalg section; ``quick`` runs smaller sizes (CI keeps them running)."""
    if quick:
        gaussian_nll(512, 4, rounds)
        circulant_solve(512, rounds)
        toeplitz_matmul(512, rounds)
        kronecker(8, rounds)
        low_rank_layer(512, 16, rounds)
    else:
        gaussian_nll(2048, 4, rounds)
        gaussian_nll(1024, 8, rounds)
        gaussian_nll(512, 4, rounds)
        circulant_solve(4096, rounds)
        toeplitz_matmul(4096, rounds)
        kronecker(32, rounds)
        low_rank_layer(4096, 64, rounds)
    orthogonal_solve(64, 16, rounds)
    positive_definite_inv_quad_logdet(256 if quick else 512, 4, rounds)
