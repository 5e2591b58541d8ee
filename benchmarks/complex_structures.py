"""Complex structures: fs.Unitary against torch's orthogonal parametrization on complex weights.

``torch.nn.utils.parametrizations.orthogonal`` makes a complex ``nn.Linear`` weight unitary
with its ``matrix_exp`` and ``cayley`` maps; its ``householder`` map refuses complex tensors
(``ValueError`` in torch 2.13), so that row is absent. Two sections:

- one layer, forward + backward, n = 64 and 256: fs.Unitary's three methods on a complex64
  raw against torch's two maps, ratios to ``fs Unitary (cayley)``;
- an ensemble step: E layers (their own data) trained one SGD step, fs ``vmap(grad)`` over the
  stacked complex raws against a Python loop over E parametrized modules with
  ``torch.optim.SGD`` (torch's maps, and fs.Unitary through ``fs.as_parametrization``).
"""

from __future__ import annotations

import torch
from _timing import report, timed
from torch import nn
from torch.func import grad, vmap
from torch.nn.utils import parametrizations, parametrize

import functional_struct as fs

DTYPE = torch.complex64
METHODS = ("cayley", "expm", "householder")
TORCH_MAPS = ("matrix_exp", "cayley")


def _real_sum(w: torch.Tensor) -> torch.Tensor:
    """A real scalar of a complex weight that touches every entry."""
    return torch.view_as_real(w).sum()


def single_layer(sizes: list[int], rounds: int) -> None:
    for n in sizes:
        gen = torch.Generator().manual_seed(0)
        raw = torch.randn(n, n, generator=gen, dtype=DTYPE).requires_grad_(True)
        maps = {f"fs Unitary ({m})": fs.Unitary(method=m) for m in METHODS}
        variants = {
            name: (lambda raw=raw, s=s: _real_sum(s.apply(raw)).backward())
            for name, s in maps.items()
        }
        for kind in TORCH_MAPS:
            layer = nn.Linear(n, n, bias=False, dtype=DTYPE)
            parametrizations.orthogonal(layer, orthogonal_map=kind)
            variants[f"torch orthogonal ({kind})"] = lambda layer=layer: _real_sum(
                layer.weight
            ).backward()
        report(
            "complex unitary map, forward+backward",
            f"n={n}, complex64",
            timed(variants, rounds),
            "fs Unitary (cayley)",
            "torch's householder map refuses complex weights",
        )


def ensemble_step(e: int, n: int, rounds: int, samples: int = 64) -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(e, samples, n, generator=gen, dtype=DTYPE)
    y = torch.randn(e, samples, n, generator=gen, dtype=DTYPE)
    lr = 0.01
    variants = {}
    for method in ("cayley", "expm"):
        s = fs.Unitary(method=method)

        def loss(r, xb, yb, s=s):
            return (xb @ s.apply(r).mT - yb).abs().square().mean()

        step = vmap(grad(loss))
        box = {"raw": s.init((e, n, n), generator=gen, dtype=DTYPE)}

        def run(step=step, box=box):
            box["raw"] = box["raw"] - lr * step(box["raw"], x, y)

        variants[f"fs vmap(grad), {method}"] = run

    def modules(register):
        out = []
        for _ in range(e):
            layer = nn.Linear(n, n, bias=False, dtype=DTYPE)
            register(layer)
            out.append((layer, torch.optim.SGD(layer.parameters(), lr=lr)))
        return out

    def loop(ms):
        def run():
            for (layer, opt), xb, yb in zip(ms, x.unbind(0), y.unbind(0), strict=True):
                opt.zero_grad()
                (layer(xb) - yb).abs().square().mean().backward()
                opt.step()

        return run

    for kind in TORCH_MAPS:
        variants[f"torch orthogonal ({kind}) loop"] = loop(
            modules(lambda m, kind=kind: parametrizations.orthogonal(m, orthogonal_map=kind))
        )
    variants["fs.as_parametrization(Unitary()) loop"] = loop(
        modules(
            lambda m: parametrize.register_parametrization(
                m, "weight", fs.as_parametrization(fs.Unitary()), unsafe=True
            )
        )
    )
    report(
        "complex ensemble step",
        f"E={e}, n={n}, complex64",
        timed(variants, rounds),
        "fs vmap(grad), cayley",
    )


def run(quick: bool, rounds: int) -> None:
    single_layer([8, 16] if quick else [64, 256], rounds)
    ensemble_step(4 if quick else 32, 8 if quick else 32, rounds)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, few rounds")
    args = parser.parse_args()
    print("| section | case | variant | median | ratio | notes |")
    print("|---|---|---|---|---|---|")
    run(args.quick, 5 if args.quick else 15)
