"""Write a structure of your own, check it against every law, and train with it.

The catalog has no "rows sum to a fixed total" structure (a mixing matrix that preserves
mass, without requiring positivity). Here it is in a dozen lines: a frozen dataclass that
derives from fs.AbstractStructure and fills in five hooks. fs.testing.check_laws then runs the
same laws the library's own structures pass (membership, round trips, vmap, grad/jacfwd/hessian
against finite differences, torch.compile, purity, bad input), and fs.structure uses it in a
functional training loop like any built-in.

    python examples/custom_structure.py [--quick]
"""

from __future__ import annotations

import argparse
import dataclasses
import math

import torch
from torch.func import functional_call, grad, vmap

import functional_struct as fs
from functional_struct import testing


@dataclasses.dataclass(frozen=True)
class FixedRowSum(fs.AbstractStructure):
    """Matrices whose rows each sum to ``total`` (an affine subspace; rectangular allowed).

    Args:
      total: the sum of every row.

    Example:
      >>> FixedRowSum(1.0).apply(torch.zeros(2, 4))
      tensor([[0.2500, 0.2500, 0.2500, 0.2500],
              [0.2500, 0.2500, 0.2500, 0.2500]])
    """

    total: float = 1.0

    # The hooks receive tensors that already passed the shape and dtype checks.
    def _apply(self, raw):
        # The orthogonal projection onto {rows sum to total}: remove each row's excess evenly.
        return raw - (raw.sum(-1, keepdim=True) - self.total) / raw.shape[-1]

    def _inverse(self, value):
        return value.clone()  # members are fixed points of apply

    def _contains(self, value, atol, rtol):
        excess = (value.sum(-1) - self.total).abs()
        return (excess <= atol + rtol * value.abs().sum(-1)).all(-1)

    def _project(self, value):
        return self._apply(value)  # apply is the Frobenius projection itself

    def _init(self, shape, generator, dtype, device):
        noise = torch.randn(shape, generator=generator, dtype=dtype, device=device)
        return self._apply(noise / math.sqrt(shape[-1]))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="optimizer steps")
    parser.add_argument("--ensemble", type=int, default=8, help="models trained at once")
    parser.add_argument("--dim", type=int, default=6, help="matrix size")
    parser.add_argument("--quick", action="store_true", help="fewer steps and checks, for CI")
    args = parser.parse_args(argv)
    steps = 100 if args.quick else args.steps

    structure = FixedRowSum(total=1.0)
    print("checking every law on FixedRowSum ...")
    laws = [law for law in testing.LAWS if not (args.quick and law == "compile")]
    for shape in [(4, 4), (3, 5)]:
        testing.check_laws(structure, shape, laws=laws)
    print(f"  passed: {', '.join(laws)}")

    # Train an ensemble of mass-preserving mixing layers, all at once.
    gen = torch.Generator().manual_seed(0)
    e, n = args.ensemble, args.dim
    model = torch.nn.Linear(n, n, bias=False)
    spec = fs.structure({"weight": structure})
    target = spec.apply(spec.init(dict(model.named_parameters()), batch_shape=(e,), generator=gen))
    x = torch.randn(e, 128, n, generator=gen)
    y = vmap(lambda p, xb: functional_call(model, p, (xb,)))(target, x)
    raw = spec.init(dict(model.named_parameters()), batch_shape=(e,), generator=gen)

    def loss(r, xb, yb):
        return (functional_call(model, spec.apply(r), (xb,)) - yb).square().mean()

    step = vmap(grad(loss))
    for i in range(steps + 1):
        if i % max(1, steps // 4) == 0:
            print(f"  step {i:4d}  mean loss {vmap(loss)(raw, x, y).mean().item():.6f}")
        grads = step(raw, x, y)
        raw = {k: raw[k] - 0.5 * grads[k] for k in raw}

    weight = spec.apply(raw)["weight"]
    worst = (weight.sum(-1) - 1.0).abs().max().item()
    print(f"worst |row sum - 1| over {e} models: {worst:.2e}")
    if not (spec.contains({"weight": weight})["weight"].all() and worst < 1e-5):
        raise SystemExit("the structure did not hold")


if __name__ == "__main__":
    main()
