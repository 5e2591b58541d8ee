"""A real small network with structured parameters, trained with plain torch.optim.

An MLP predicts a 4-dim target; its hidden map is orthogonal (norm-preserving, so the signal
neither explodes nor vanishes through the layer) and the model also learns the positive-definite
covariance of its prediction error, trained by the Gaussian negative log-likelihood. The raw
parameters are ordinary leaf tensors handed to torch.optim.Adam; loss.backward() does the rest.

    python examples/mlp_optim.py [--quick]
"""

from __future__ import annotations

import argparse

import torch
from _shared import gaussian_nll
from torch import nn
from torch.func import functional_call

import functional_struct as fs


class Regressor(nn.Module):
    def __init__(self, d_in: int, hidden: int, d_out: int) -> None:
        super().__init__()
        self.encode = nn.Linear(d_in, hidden)
        self.hidden = nn.Linear(hidden, hidden)
        self.decode = nn.Linear(hidden, d_out)
        self.noise_covariance = nn.Parameter(torch.eye(d_out))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.encode(x))
        h = torch.tanh(self.hidden(h))
        return gaussian_nll(self.noise_covariance, y - self.decode(h))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=600, help="Adam steps")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--quick", action="store_true", help="fewer steps, for CI")
    args = parser.parse_args(argv)
    steps = 150 if args.quick else args.steps
    torch.manual_seed(args.seed)

    # Data: y = f(x) + correlated noise with a known covariance.
    x = torch.randn(1024, 6)
    mix = torch.tensor([[1.0, 0, 0, 0], [0.8, 0.6, 0, 0], [0, 0, 0.3, 0], [0, 0, 0.2, 0.1]])
    true_cov = mix @ mix.mT
    y = torch.stack([x[:, 0] * x[:, 1], torch.sin(x[:, 2]), x[:, 3] ** 2 / 3, x[:, 4]], dim=-1)
    y = y + torch.randn(1024, 4) @ mix.mT

    model = Regressor(6, 32, 4)
    structure = fs.structure(
        {
            "hidden.weight": fs.Orthogonal(),
            "noise_covariance": fs.PositiveDefinite(),
        }
    )
    # Start from the module's own initialization, projected onto the structures.
    raw = {
        k: v.requires_grad_() for k, v in structure.raw_from(dict(model.named_parameters())).items()
    }
    optimizer = torch.optim.Adam(raw.values(), lr=0.01)
    for step in range(steps + 1):
        optimizer.zero_grad()
        loss = functional_call(model, structure.apply(raw), (x, y))
        loss.backward()
        optimizer.step()
        if step % max(1, steps // 5) == 0:
            print(f"step {step:4d}  negative log-likelihood {loss.item():.4f}")

    weights = {k: v.detach() for k, v in structure.apply(raw).items()}
    q = weights["hidden.weight"]
    cov = weights["noise_covariance"]
    print(f"hidden map orthogonal: max |QᵀQ - I| = {(q.mT @ q - torch.eye(32)).abs().max():.1e}")
    print("learned noise covariance:\n", torch.round(cov, decimals=2))
    print("true noise covariance:\n", true_cov)
    # Inference with the ordinary module: write the structured weights back.
    model.load_state_dict(weights)
    ok = bool(fs.Orthogonal().contains(model.hidden.weight.detach()))
    ok &= bool(fs.PositiveDefinite().contains(model.noise_covariance.detach()))
    ok &= bool((cov - true_cov).abs().max() < (0.5 if args.quick else 0.15))
    print("structure held and covariance recovered:", ok)
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
