"""An ensemble of 16 constrained networks trained at once with vmap(grad(loss))."""

import torch
from torch.func import functional_call, vmap

import functional_struct as fs


def test_vmapped_ensemble_trains_and_stays_structured():
    torch.manual_seed(0)
    ensemble, n, samples = 16, 6, 64
    model = torch.nn.Sequential(torch.nn.Linear(n, n), torch.nn.Tanh(), torch.nn.Linear(n, n))
    structure = fs.structure(
        {
            "0.weight": fs.Orthogonal(),
            "2.weight": fs.UpperTriangular(),
            "*.bias": None,
        }
    )
    params = dict(model.named_parameters())
    gen = torch.Generator().manual_seed(1)
    # each member fits its own teacher, a network of the same structure
    teacher = structure.apply(structure.init(params, batch_shape=(ensemble,), generator=gen))
    x = torch.randn(ensemble, samples, n, generator=gen)
    y = vmap(lambda p, xb: functional_call(model, p, (xb,)))(teacher, x)

    raw = structure.init(params, batch_shape=(ensemble,), generator=gen)

    def loss(r, xb, yb):
        return (functional_call(model, structure.apply(r), (xb,)) - yb).square().mean()

    step = torch.func.grad_and_value(loss)
    batched = vmap(step)
    first = vmap(loss)(raw, x, y)
    velocity = {k: torch.zeros_like(v) for k, v in raw.items()}
    for _ in range(100):
        grads, _ = batched(raw, x, y)
        velocity = {k: 0.9 * velocity[k] + grads[k] for k in raw}
        raw = {k: raw[k] - 0.05 * velocity[k] for k in raw}
    last = vmap(loss)(raw, x, y)

    assert last.shape == (ensemble,)
    assert (last < 0.5 * first).all(), (first, last)
    structured = structure.apply(raw)
    inside = structure.contains(structured)
    assert inside["0.weight"].shape == (ensemble,)
    assert inside["0.weight"].all()
    assert inside["2.weight"].all()
    q = structured["0.weight"]
    assert (q.mT @ q - torch.eye(n)).abs().max() < 1e-5
    # the gradient never reaches the dead lower triangle of the triangular weight
    assert torch.equal(velocity["2.weight"], torch.triu(velocity["2.weight"]))
