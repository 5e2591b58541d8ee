"""Every common way of training raw trees: torch.optim, functional updates, torchopt."""

import pytest
import torch
from torch.func import functional_call, grad_and_value, vmap

import functional_struct as fs


def _problem(ensemble=None, seed=0):
    gen = torch.Generator().manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(5, 5), torch.nn.Tanh(), torch.nn.Linear(5, 5))
    structure = fs.structure({"0.weight": fs.Orthogonal(), "2.weight": fs.LowerTriangular()})
    batch = () if ensemble is None else (ensemble,)
    teacher = structure.apply(
        structure.init(dict(model.named_parameters()), batch_shape=batch, generator=gen)
    )
    x = torch.randn(*batch, 64, 5, generator=gen)
    call = lambda p, xb: functional_call(model, p, (xb,))  # noqa: E731
    y = (vmap(call) if batch else call)(teacher, x)
    raw = structure.init(dict(model.named_parameters()), batch_shape=batch, generator=gen)

    def loss(r, xb, yb):
        return (functional_call(model, structure.apply(r), (xb,)) - yb).square().mean()

    return structure, raw, x, y, loss


def _holds(structure, raw):
    inside = structure.contains(structure.apply(raw))
    return all(bool(v.all()) for v in inside.values())


def test_torch_optim_with_raw_leaves_as_parameters():
    structure, raw, x, y, loss = _problem()
    params = {k: v.clone().requires_grad_() for k, v in raw.items()}
    optimizer = torch.optim.Adam(params.values(), lr=0.02)
    first = loss(params, x, y).item()
    for _ in range(150):
        optimizer.zero_grad()
        value = loss(params, x, y)
        value.backward()
        optimizer.step()
    assert value.item() < 0.3 * first
    assert _holds(structure, {k: v.detach() for k, v in params.items()})


def test_torch_optim_adamw_weight_decay_on_packed_raw_touches_only_free_entries():
    """Every packed raw entry is one free entry of the matrix, so weight decay, which shrinks
    every raw entry, shrinks exactly the free entries; the full form's raw also carries the
    dead entries below the diagonal, which decay then moves for nothing."""
    n = 4
    packed = fs.UpperTriangular(packed=True)
    raw = torch.randn(n * (n + 1) // 2, generator=torch.Generator().manual_seed(0))
    jac = torch.func.jacrev(packed.apply)(raw).reshape(n * n, -1)
    # Each raw entry moves exactly one matrix entry, and only upper-triangular ones.
    assert torch.equal((jac != 0).sum(0), torch.ones(raw.numel(), dtype=torch.long))
    assert torch.equal((jac != 0).any(1).reshape(n, n), torch.ones(n, n).triu().bool())

    raw = raw.clone().requires_grad_()
    before = packed.apply(raw).detach()
    optimizer = torch.optim.AdamW([raw], lr=0.1, weight_decay=0.5)
    for _ in range(20):  # a loss with zero gradient: only the decay moves the raw
        optimizer.zero_grad()
        (0 * packed.apply(raw).sum()).backward()
        optimizer.step()
    torch.testing.assert_close(packed.apply(raw).detach(), before * (1 - 0.1 * 0.5) ** 20)

    full = torch.randn(n, n, generator=torch.Generator().manual_seed(1)).requires_grad_()
    dead = full.detach().tril(-1).clone()
    optimizer = torch.optim.AdamW([full], lr=0.1, weight_decay=0.5)
    for _ in range(20):
        optimizer.zero_grad()
        (0 * fs.UpperTriangular().apply(full).sum()).backward()
        optimizer.step()
    torch.testing.assert_close(full.detach().tril(-1), dead * (1 - 0.1 * 0.5) ** 20)
    assert not torch.equal(full.detach().tril(-1), dead)


def test_hand_written_functional_updates_under_vmap_grad():
    structure, raw, x, y, loss = _problem(ensemble=8)
    step = vmap(grad_and_value(loss))
    _, first = step(raw, x, y)
    for _ in range(150):
        grads, value = step(raw, x, y)
        raw = {k: raw[k] - 0.1 * grads[k] for k in raw}
    assert (value < 0.5 * first).all()
    assert _holds(structure, raw)


# torchopt's adam calls addcmul_, which vmap runs through its slow fallback: a torch warning.
@pytest.mark.filterwarnings("ignore:There is a performance drop:UserWarning")
def test_torchopt_functional_adam_in_a_vmapped_ensemble():
    torchopt = pytest.importorskip("torchopt")
    structure, raw, x, y, loss = _problem(ensemble=8)
    optimizer = torchopt.adam(lr=0.02)
    state = vmap(optimizer.init)(raw)

    def step(r, s, xb, yb):
        grads, value = grad_and_value(loss)(r, xb, yb)
        updates, s = optimizer.update(grads, s, inplace=False)
        return torchopt.apply_updates(r, updates, inplace=False), s, value

    batched = vmap(step)
    _, _, first = batched(raw, state, x, y)
    for _ in range(150):
        raw, state, value = batched(raw, state, x, y)
    assert (value < 0.3 * first).all()
    assert _holds(structure, raw)
