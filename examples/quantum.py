"""Two quantum problems on complex structures: fitting a gate, and state tomography.

1. **Gate fitting.** A Haar-random target gate ``U`` on ``k`` qubits (``d = 2^k``) is seen
   only through pairs ``(ψ_i, U ψ_i)`` of random unit vectors. An ensemble of ``E`` random
   starts trains at once: ``vmap(grad)`` of the loss ``1 - mean_i |⟨U ψ_i, V ψ_i⟩|²`` over
   the stacked complex raws of ``fs.Unitary()`` (torch.func.grad takes a complex input
   with a real output and returns torch's gradient ``∂L/∂Re + i ∂L/∂Im``; Adam then runs on
   ``torch.view_as_real`` of raw and gradient, so its second moments are per real
   coordinate). A second route steps on the unitary points themselves with
   ``fs.optim.riemannian_sgd(fs.Unitary())`` under the same ``vmap``. Each member is scored
   by the average gate fidelity (Nielsen, Phys. Lett. A 303, 249 (2002); Pedersen, Møller
   and Mølmer, Phys. Lett. A 367, 47 (2007))::

       F_avg(U, V) = (d + |tr(Uᴴ V)|²) / (d (d + 1)),

   which is 1 exactly when ``V`` is ``U`` up to a global phase.

2. **Maximum-likelihood state tomography** of a 3-qubit state (``ρ = 0.8 |GHZ⟩⟨GHZ| +
   0.2 |W⟩⟨W|``, rank 2): each of the 27 Pauli settings measures every qubit in its X, Y or Z
   basis (8 outcomes) ``N`` times (``torch.multinomial`` on a seeded generator). The linear
   inversion ``ρ_LI = (1/8) Σ_P ⟨P⟩ P`` over the 64 Pauli strings is Hermitian with trace 1
   but has negative eigenvalues, so it is no state; ``fs.DensityMatrix().project(ρ_LI)`` is
   the nearest state; the MLE minimizes ``-Σ counts log p(outcome | ρ)`` over
   ``ρ = fs.DensityMatrix().apply(raw)`` with L-BFGS (on the real view of the raw), and
   ``fs.DensityMatrix(rank=2)`` fits the rank-2 model. Each estimate is scored by the
   Uhlmann fidelity ``F(ρ, σ) = (tr √(√ρ σ √ρ))²`` with the true state (by ``eigh``); for
   ``ρ_LI``, no state, the same formula (negative eigenvalues clamped) is no fidelity and
   can exceed 1, and the table marks it so.

Everything runs in complex128 from seeded generators.

    python examples/quantum.py            # 10-20 s on one core
    python examples/quantum.py --quick    # a few seconds, for CI
"""

from __future__ import annotations

import argparse
import itertools
import math
import time

import torch
from _shared import plot_or_explain
from torch.func import grad, grad_and_value, vmap

import functional_struct as fs

DTYPE = torch.complex128
TARGET = 1e-6  # infidelity the gate ensemble must reach


# ---------------------------------------------------------------------------- gate fitting
def gate_problem(qubits: int, states: int, noise: float, gen: torch.Generator):
    """A Haar-random gate and ``states`` pairs ``(ψ_i, U ψ_i)`` (rows), outputs renormalized.

    Returns:
      ``(target, inputs, outputs)``: ``d x d``, ``states x d``, ``states x d``.
    """
    d = 2**qubits
    unitary = fs.Unitary()
    target = unitary.apply(unitary.init((d, d), generator=gen, dtype=DTYPE))
    inputs = torch.randn(states, d, generator=gen, dtype=DTYPE)
    inputs = inputs / inputs.norm(dim=-1, keepdim=True)
    outputs = inputs @ target.mT
    if noise:
        outputs = outputs + noise * torch.randn(states, d, generator=gen, dtype=DTYPE)
        outputs = outputs / outputs.norm(dim=-1, keepdim=True)
    return target, inputs, outputs


def gate_loss(gate: torch.Tensor, inputs: torch.Tensor, outputs: torch.Tensor) -> torch.Tensor:
    """``1 - mean_i |⟨φ_i, V ψ_i⟩|²``: zero when ``V`` maps every input onto its output."""
    overlaps = (outputs.conj() * (inputs @ gate.mT)).sum(-1)
    return 1 - overlaps.abs().square().mean()


def gate_fidelity(target: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
    """Average gate fidelity ``(d + |tr(Uᴴ V)|²) / (d (d + 1))`` (batched over ``gate``)."""
    d = target.shape[-1]
    overlap = (target.conj() * gate).sum((-2, -1))
    return (d + overlap.abs().square()) / (d * (d + 1))


def _cosine(lr: float, step: int, steps: int) -> float:
    return 0.5 * lr * (1 + math.cos(math.pi * step / steps))


def _first_hits(infidelities: list[torch.Tensor]) -> torch.Tensor:
    """Per member, the first step (1-based) whose infidelity is at most ``TARGET``, else -1."""
    hit = torch.stack(infidelities) <= TARGET
    first = hit.to(torch.int64).argmax(0) + 1
    return torch.where(hit.any(0), first, -1)


def fit_gate_raw(
    structure: fs.AbstractStructure,
    target: torch.Tensor,
    inputs: torch.Tensor,
    outputs: torch.Tensor,
    members: int,
    steps: int,
    gen: torch.Generator,
    lr: float = 0.3,
):
    """``members`` random starts of ``structure``'s raw, trained at once by vmap(grad) + Adam.

    Adam (betas 0.9, 0.999) acts on ``torch.view_as_real`` of the complex raw and gradient,
    with a cosine learning-rate decay from ``lr`` to 0 over ``steps``. The infidelity with
    ``target`` is read after every step, outside the clock.

    Returns:
      ``(gates, first_hits, curve, seconds)``: the ``members x d x d`` trained unitaries,
      each member's first step at infidelity ``<= TARGET`` (-1 if none), the mean loss per
      step, and the training time (after one untimed warm-up call).
    """
    d = inputs.shape[-1]
    raw = structure.init((members, d, d), generator=gen, dtype=DTYPE)

    def loss(r):
        return gate_loss(structure.apply(r), inputs, outputs)

    step = vmap(grad_and_value(loss))
    step(raw)
    m = torch.zeros_like(torch.view_as_real(raw))
    v = torch.zeros_like(m)
    curve, infidelities, seconds = [], [], 0.0
    for i in range(1, steps + 1):
        start = time.perf_counter()
        g, value = step(raw)
        g = torch.view_as_real(g)
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g.square()
        update = (m / (1 - 0.9**i)) / ((v / (1 - 0.999**i)).sqrt() + 1e-12)
        raw = torch.view_as_complex(torch.view_as_real(raw) - _cosine(lr, i - 1, steps) * update)
        seconds += time.perf_counter() - start
        curve.append(value.mean().item())
        infidelities.append(1 - gate_fidelity(target, structure.apply(raw)))
    return structure.apply(raw), _first_hits(infidelities), curve, seconds


def fit_gate_riemannian(
    target: torch.Tensor,
    inputs: torch.Tensor,
    outputs: torch.Tensor,
    members: int,
    steps: int,
    gen: torch.Generator,
    lr: float = 0.5,
):
    """The same kind of random starts as points on U(d), stepped by ``fs.optim.riemannian_sgd``.

    Riemannian SGD with momentum 0.9 on ``fs.Unitary()`` (tangent projection and QR
    retraction), the whole ensemble in one ``vmap``; ``lr`` decays as a cosine, set in the
    optimizer state each step.

    Returns:
      ``(gates, first_hits, curve, seconds)`` as :func:`fit_gate_raw`.
    """
    d = inputs.shape[-1]
    unitary = fs.Unitary()
    points = unitary.apply(unitary.init((members, d, d), generator=gen, dtype=DTYPE))
    opt = fs.optim.riemannian_sgd(unitary, lr=lr, momentum=0.9)

    def loss(x):
        return gate_loss(x, inputs, outputs)

    step = vmap(lambda x, s: opt.update(x, grad(loss)(x), s))
    state = vmap(opt.init)(points)
    step(points, state)
    curve, infidelities, seconds = [], [], 0.0
    for i in range(steps):
        start = time.perf_counter()
        rate = torch.full((members,), _cosine(lr, i, steps), dtype=torch.float64)
        points, state = step(points, state._replace(lr=rate))
        seconds += time.perf_counter() - start
        curve.append(vmap(loss)(points).mean().item())
        infidelities.append(1 - gate_fidelity(target, points))
    return points, _first_hits(infidelities), curve, seconds


# ------------------------------------------------------------------------------- tomography
PAULI = {
    "I": torch.eye(2, dtype=DTYPE),
    "X": torch.tensor([[0, 1], [1, 0]], dtype=DTYPE),
    "Y": torch.tensor([[0, -1j], [1j, 0]], dtype=DTYPE),
    "Z": torch.tensor([[1, 0], [0, -1]], dtype=DTYPE),
}
# Columns: the +1 then the -1 eigenvector of X, Y and Z.
BASIS = {
    "X": torch.tensor([[1, 1], [1, -1]], dtype=DTYPE) / math.sqrt(2),
    "Y": torch.tensor([[1, 1], [1j, -1j]], dtype=DTYPE) / math.sqrt(2),
    "Z": torch.eye(2, dtype=DTYPE),
}


def kron(*factors: torch.Tensor) -> torch.Tensor:
    out = factors[0]
    for f in factors[1:]:
        out = torch.kron(out, f)
    return out


def settings(qubits: int) -> list[str]:
    """The ``3^qubits`` measurement settings, as strings like ``"XZY"``."""
    return ["".join(s) for s in itertools.product("XYZ", repeat=qubits)]


def setting_bases(qubits: int) -> torch.Tensor:
    """``(3^k, d, d)``: for each setting, the measurement basis vectors as columns."""
    return torch.stack([kron(*(BASIS[c] for c in s)) for s in settings(qubits)])


def outcome_probabilities(rho: torch.Tensor, bases: torch.Tensor) -> torch.Tensor:
    """``p[s, o] = ⟨b_so| ρ |b_so⟩``, real, for every setting ``s`` and outcome ``o``."""
    return torch.einsum("sio,ij,sjo->so", bases.conj(), rho, bases).real


def true_state(qubits: int = 3, weight: float = 0.8) -> torch.Tensor:
    """``weight |GHZ⟩⟨GHZ| + (1 - weight) |W⟩⟨W|``: a rank-2 mixed state."""
    d = 2**qubits
    ghz = torch.zeros(d, dtype=DTYPE)
    ghz[0] = ghz[-1] = 1 / math.sqrt(2)
    w = torch.zeros(d, dtype=DTYPE)
    w[[2**j for j in range(qubits)]] = 1 / math.sqrt(qubits)
    return weight * torch.outer(ghz, ghz.conj()) + (1 - weight) * torch.outer(w, w.conj())


def measure(rho: torch.Tensor, shots: int, gen: torch.Generator) -> torch.Tensor:
    """Counts ``(3^k, 2^k)`` of ``shots`` draws per setting."""
    qubits = int(math.log2(rho.shape[-1]))
    probs = outcome_probabilities(rho, setting_bases(qubits)).clamp_min(0)
    draws = torch.multinomial(probs, shots, replacement=True, generator=gen)
    return torch.nn.functional.one_hot(draws, rho.shape[-1]).sum(-2).to(torch.float64)


def linear_inversion(counts: torch.Tensor) -> torch.Tensor:
    """``(1/d) Σ_P ⟨P⟩ P`` over the ``4^k`` Pauli strings, ``⟨P⟩`` from the counts.

    The expectation of a string is the mean of the outcome signs (the product of the
    eigenvalues on its non-identity qubits) over the shots of every setting that measures
    those qubits in its bases.
    """
    d = counts.shape[-1]
    qubits = int(math.log2(d))
    freq = counts / counts.sum(-1, keepdim=True)
    bits = torch.tensor(list(itertools.product((1.0, -1.0), repeat=qubits)), dtype=torch.float64)
    names = settings(qubits)
    rho = torch.zeros(d, d, dtype=DTYPE)
    for string in itertools.product("IXYZ", repeat=qubits):
        support = [j for j, c in enumerate(string) if c != "I"]
        signs = bits[:, support].prod(-1) if support else torch.ones(d, dtype=torch.float64)
        match = [i for i, s in enumerate(names) if all(s[j] == string[j] for j in support)]
        expectation = (freq[match] @ signs).mean()
        rho = rho + expectation * kron(*(PAULI[c] for c in string))
    return rho / d


def nll(rho: torch.Tensor, counts: torch.Tensor, bases: torch.Tensor) -> torch.Tensor:
    """``-Σ counts log p(outcome | ρ)`` per shot."""
    probs = outcome_probabilities(rho, bases).clamp_min(1e-300)
    return -(counts * probs.log()).sum() / counts.sum()


def fit_mle(
    structure: fs.AbstractStructure, counts: torch.Tensor, start: torch.Tensor, iterations: int
):
    """Minimize the NLL over ``structure.apply(raw)`` with L-BFGS (strong Wolfe line search).

    L-BFGS acts on the real and imaginary parts of the complex raw ``start``, stacked as one
    real tensor (``torch.optim.LBFGS`` flattens its parameters as real numbers).

    Returns:
      ``(rho, nll, seconds)``.
    """
    bases = setting_bases(int(math.log2(counts.shape[-1])))
    real = torch.stack([start.real, start.imag]).requires_grad_(True)
    opt = torch.optim.LBFGS(
        [real],
        lr=1,
        max_iter=iterations,
        history_size=50,
        tolerance_grad=1e-12,
        tolerance_change=1e-15,
        line_search_fn="strong_wolfe",
    )

    def closure():
        opt.zero_grad()
        value = nll(structure.apply(torch.complex(real[0], real[1])), counts, bases)
        value.backward()
        return value

    start_time = time.perf_counter()
    opt.step(closure)
    seconds = time.perf_counter() - start_time
    with torch.no_grad():
        rho = structure.apply(torch.complex(real[0], real[1]))
        return rho, nll(rho, counts, bases).item(), seconds


def _psd_sqrt(rho: torch.Tensor) -> torch.Tensor:
    values, vectors = torch.linalg.eigh(rho)
    return (vectors * values.clamp_min(0).sqrt().to(rho.dtype)) @ vectors.mH


def uhlmann_fidelity(rho: torch.Tensor, sigma: torch.Tensor) -> float:
    """``(tr √(√ρ σ √ρ))²`` by ``eigh``; ``ρ`` a state (negative eigenvalues of the product,
    present when ``sigma`` is no state, are clamped to 0)."""
    root = _psd_sqrt(rho)
    inner = root @ sigma @ root
    values = torch.linalg.eigvalsh((inner + inner.mH) / 2)
    return values.clamp_min(0).sqrt().sum().square().item()


def tomography(shots: int, iterations: int, gen: torch.Generator) -> dict:
    """Simulate the 27 settings, then the four estimates and their fidelities with the truth."""
    truth = true_state()
    counts = measure(truth, shots, gen)
    bases = setting_bases(3)
    density = fs.DensityMatrix()
    rank2 = fs.DensityMatrix(rank=2)
    li = linear_inversion(counts)
    projected = density.project(li)
    mle, mle_nll, mle_seconds = fit_mle(density, counts, torch.eye(8, dtype=DTYPE), iterations)
    mle2, mle2_nll, mle2_seconds = fit_mle(
        rank2, counts, rank2.inverse(rank2.project(li)), iterations
    )
    estimates = {
        "linear inversion": li,
        "DensityMatrix().project(LI)": projected,
        "MLE, DensityMatrix()": mle,
        "MLE, DensityMatrix(rank=2)": mle2,
    }
    return {
        "truth": truth,
        "counts": counts,
        "estimates": estimates,
        "min_eigenvalue": {k: torch.linalg.eigvalsh(v).min().item() for k, v in estimates.items()},
        "contains": {k: bool(density.contains(v)) for k, v in estimates.items()},
        "fidelity": {k: uhlmann_fidelity(truth, v) for k, v in estimates.items()},
        "nll": {k: nll(v, counts, bases).item() for k, v in estimates.items()},
        "mle_seconds": {
            "MLE, DensityMatrix()": mle_seconds,
            "MLE, DensityMatrix(rank=2)": mle2_seconds,
        },
        "truth_nll": nll(truth, counts, bases).item(),
        "mle_nll": mle_nll,
        "mle2_nll": mle2_nll,
    }


# ------------------------------------------------------------------------------------- main
def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--qubits", type=int, default=3, help="qubits of the gate (d = 2^k)")
    parser.add_argument("--members", "-e", type=int, default=16, help="random starts (E)")
    parser.add_argument("--steps", type=int, default=1500, help="steps per gate route")
    parser.add_argument("--noise", type=float, default=0.0, help="noise on the gate outputs")
    parser.add_argument("--shots", type=int, default=1000, help="shots per Pauli setting")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--plot", metavar="FILE.png", help="save loss curves and the estimates")
    parser.add_argument("--quick", action="store_true", help="small settings, for CI")
    args = parser.parse_args(argv)
    if args.quick:
        args.qubits, args.members, args.steps, args.shots = 2, 4, 300, 300

    gen = torch.Generator().manual_seed(args.seed)
    d = 2**args.qubits
    states = 2 * d
    target, inputs, outputs = gate_problem(args.qubits, states, args.noise, gen)
    print(
        f"Gate fitting: {args.qubits} qubits (d = {d}), {states} state pairs, noise "
        f"{args.noise:g}, E = {args.members} random starts, {args.steps} steps, complex128, "
        f"torch threads {torch.get_num_threads()}"
    )
    print(
        "| route | best infidelity | median infidelity | members at F >= 1 - 1e-6 | "
        "step there: best / median member | seconds |"
    )
    print("|---|---|---|---|---|---|")
    routes = {
        "fs.Unitary(method='expm') raw, vmap(grad) + Adam": lambda: fit_gate_raw(
            fs.Unitary(method="expm"), target, inputs, outputs, args.members, args.steps, gen
        ),
        "fs.Unitary() (Cayley) raw, vmap(grad) + Adam": lambda: fit_gate_raw(
            fs.Unitary(), target, inputs, outputs, args.members, args.steps, gen
        ),
        "fs.optim.riemannian_sgd on fs.Unitary(), vmap": lambda: fit_gate_riemannian(
            target, inputs, outputs, args.members, args.steps, gen
        ),
    }
    curves = {}
    for name, run in routes.items():
        gates, hits, curve, seconds = run()
        infidelity = 1 - gate_fidelity(target, gates)
        infidelity = infidelity.clamp_min(0)  # 1 - F is -4e-16 at rounding
        reached = hits[hits > 0].sort().values
        first = f"{reached[0].item()}" if len(reached) else "-"
        half = (
            f"{reached[(args.members - 1) // 2].item()}" if 2 * len(reached) > args.members else "-"
        )
        print(
            f"| {name} | {infidelity.min().item():.1e} | {infidelity.median().item():.1e} | "
            f"{len(reached)}/{args.members} | {first} / {half} | {seconds:.2f} |"
        )
        curves[name] = curve

    print(f"\nTomography: 3 qubits, 27 Pauli settings x {args.shots} shots, truth 0.8 GHZ + 0.2 W")
    result = tomography(args.shots, 200 if args.quick else 500, gen)
    print("| estimate | smallest eigenvalue | a state (contains) | fidelity | NLL per shot |")
    print("|---|---|---|---|---|")
    for name in result["estimates"]:
        mark = "" if result["contains"][name] else " (no state: not a fidelity)"
        print(
            f"| {name} | {result['min_eigenvalue'][name]:+.2e} | {result['contains'][name]} | "
            f"{result['fidelity'][name]:.5f}{mark} | {result['nll'][name]:.5f} |"
        )
    print(
        f"NLL per shot of the true state {result['truth_nll']:.5f}; L-BFGS took "
        + ", ".join(f"{v:.2f} s ({k})" for k, v in result["mle_seconds"].items())
    )

    if args.plot:
        plt = plot_or_explain(args.plot)
        if plt is not None:
            fig, axes = plt.subplots(1, 3, figsize=(14, 4))
            for name, curve in curves.items():
                axes[0].semilogy(curve, label=name)
            axes[0].set(title="gate fitting: mean loss", xlabel="step")
            axes[0].legend()
            for ax, name in zip(
                axes[1:], ("linear inversion", "MLE, DensityMatrix()"), strict=True
            ):
                ax.imshow(result["estimates"][name].abs(), cmap="viridis")
                ax.set(title=f"|{name}|")
            fig.tight_layout()
            fig.savefig(args.plot)
            print(f"saved {args.plot}")


if __name__ == "__main__":
    main()
