"""An ensemble of constrained models trained with torchopt's functional Adam under vmap.

torchopt is optional (pip install 'functional-struct[torchopt]'); without it this example says
so and exits cleanly. Two details make torchopt work in a vmapped ensemble: the optimizer
state comes from vmap(optimizer.init), and updates use inplace=False.

    python examples/torchopt_ensemble.py [--quick]
"""

from __future__ import annotations

import argparse
import warnings

import torch
from torch.func import functional_call, grad_and_value, vmap

import functional_struct as fs


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ensemble", type=int, default=16, help="models trained at once")
    parser.add_argument("--steps", type=int, default=300, help="optimizer steps")
    parser.add_argument("--quick", action="store_true", help="fewer steps, for CI")
    args = parser.parse_args(argv)
    try:
        import torchopt
    except ImportError:
        print("torchopt is not installed: pip install 'functional-struct[torchopt]'. Skipping.")
        return
    # torchopt's adam uses addcmul_, which vmap runs through a slower fallback (a warning).
    warnings.filterwarnings("ignore", message="There is a performance drop")
    steps = 60 if args.quick else args.steps
    e, n = args.ensemble, 8
    gen = torch.Generator().manual_seed(0)

    model = torch.nn.Linear(n, n)
    structure = fs.structure({"weight": fs.Chain(fs.Positive(), fs.Diagonal())})
    like = dict(model.named_parameters())
    gains = torch.rand(e, n, generator=gen) * 3
    x = torch.randn(e, 64, n, generator=gen)
    y = x * gains.unsqueeze(1) + 1.0
    raw = structure.init(like, batch_shape=(e,), generator=gen)

    def loss(r, xb, yb):
        return (functional_call(model, structure.apply(r), (xb,)) - yb).square().mean()

    optimizer = torchopt.adam(lr=0.05)
    state = vmap(optimizer.init)(raw)

    def step(r, s, xb, yb):
        grads, value = grad_and_value(loss)(r, xb, yb)
        updates, s = optimizer.update(grads, s, inplace=False)
        return torchopt.apply_updates(r, updates, inplace=False), s, value

    batched = vmap(step)
    for i in range(steps + 1):
        raw, state, value = batched(raw, state, x, y)
        if i % max(1, steps // 4) == 0:
            print(f"step {i:4d}  mean loss {value.mean().item():.5f}")
    weight = structure.apply(raw)["weight"]
    error = (weight.diagonal(dim1=-2, dim2=-1) - gains).abs().max().item()
    inside = bool(structure.contains(structure.apply(raw))["weight"].all())
    print(f"{e} positive diagonal maps learned; worst gain error {error:.3f}; in set: {inside}")
    if not inside:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
