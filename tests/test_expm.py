"""The batched Padé exponential: accuracy against float64, small inputs, derivatives, compile."""

import pytest
import torch
from torch.func import jacfwd, vmap

from functional_struct._expm import matrix_exp, valid_norm


def _skew(scale, n, seed, dtype=torch.float64):
    raw = scale * torch.randn(16, n, n, generator=torch.Generator().manual_seed(seed), dtype=dtype)
    return raw - raw.mT


@pytest.mark.parametrize(("dtype", "tol"), [(torch.float32, 2e-6), (torch.float64, 1e-13)])
@pytest.mark.parametrize("scale", [1e-6, 1e-2, 1.0, 10.0])
@pytest.mark.parametrize("n", [2, 8, 32])
def test_matches_float64_matrix_exp_relative_to_its_size(n, scale, dtype, tol):
    a = _skew(scale, n, seed=n)
    if a.abs().sum(-2).amax() > valid_norm(dtype):
        pytest.skip("outside the documented range")
    reference = torch.linalg.matrix_exp(a)
    error = (matrix_exp(a.to(dtype)).double() - reference).abs().amax()
    assert error <= tol * max(1.0, a.abs().sum(-2).amax().item())


def test_small_inputs_keep_their_digits():
    """Scaling by 2^-8 would lose a tiny input to rounding in I + tiny; squaring D = X - I keeps
    it: exp(a) - I matches a to relative precision for a of size 1e-10."""
    a = _skew(1e-10, 6, seed=1)
    torch.testing.assert_close(matrix_exp(a) - torch.eye(6, dtype=a.dtype), a, rtol=1e-6, atol=0)


def test_symmetric_input():
    raw = torch.randn(8, 5, 5, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    s = raw + raw.mT
    torch.testing.assert_close(matrix_exp(s), torch.linalg.matrix_exp(s))


def test_vmap_jacfwd_agrees_with_a_loop_and_with_torch():
    a = _skew(0.5, 4, seed=3)[:3]
    looped = torch.stack([jacfwd(matrix_exp)(x) for x in a.unbind(0)])
    torch.testing.assert_close(vmap(jacfwd(matrix_exp))(a), looped)
    torch.testing.assert_close(looped, torch.stack([jacfwd(torch.linalg.matrix_exp)(x) for x in a]))


def test_compiled_jacfwd_is_right():
    """Pins the squaring loop's fused form: written with torch.add(d @ d, d, alpha=2), inductor's
    forward-mode tangents of the loop are wrong by 1e3 relative."""
    x = _skew(0.5, 4, seed=4, dtype=torch.float32)[0]
    torch._dynamo.reset()
    compiled = torch.compile(jacfwd(matrix_exp), fullgraph=True)(x)
    torch.testing.assert_close(compiled, jacfwd(matrix_exp)(x), atol=1e-5, rtol=1e-4)
