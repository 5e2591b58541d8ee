"""The torch.distributions bridge: constraints, bijective transforms, opt-in registration."""

import subprocess
import sys
import textwrap

import pytest
import torch
from torch.distributions import (
    Independent,
    Normal,
    SoftplusTransform,
    TransformedDistribution,
    constraints,
)
from torch.func import vmap

import functional_struct as fs


def _prior(structure, n, validate=True):
    d = structure.raw_shape((n, n))[0]
    base = Independent(Normal(torch.zeros(d, dtype=torch.float64), 1.0), 1)
    return TransformedDistribution(base, [fs.as_transform(structure)], validate_args=validate)


def test_transform_has_the_domain_codomain_and_shapes_of_the_raw_form():
    t = fs.as_transform(fs.Correlation(packed=True))
    assert t.bijective
    assert t.domain.event_dim == 1
    assert t.codomain.event_dim == 2
    assert t.forward_shape((5, 3)) == (5, 3, 3)
    assert t.inverse_shape((5, 3, 3)) == (5, 3)
    assert t == fs.as_transform(fs.Correlation(packed=True))
    positive = fs.as_transform(fs.Positive())
    assert positive.domain is constraints.real
    assert positive.codomain.event_dim == 0


def test_positive_matches_torch_softplus_transform():
    x = torch.randn(7, dtype=torch.float64)
    ours, theirs = fs.as_transform(fs.Positive()), SoftplusTransform()
    torch.testing.assert_close(ours(x), theirs(x))
    torch.testing.assert_close(
        ours.log_abs_det_jacobian(x, ours(x)), theirs.log_abs_det_jacobian(x, theirs(x))
    )


@pytest.mark.parametrize(
    "structure",
    [fs.PositiveDefinite(packed=True), fs.Correlation(packed=True)],
    ids=repr,
)
def test_transformed_distribution_log_prob_is_base_minus_log_det(structure):
    prior = _prior(structure, 3)
    sample = prior.sample((4,))
    assert sample.shape == (4, 3, 3)
    assert structure.contains(sample).all()
    raw = structure.inverse(sample)
    want = prior.base_dist.log_prob(raw) - structure.forward_and_log_det(raw)[1]
    torch.testing.assert_close(prior.log_prob(sample), want)


def test_log_prob_under_vmap_without_validation():
    """Validation checks the support with a host sync; without it, log_prob vmaps."""
    structure = fs.PositiveDefinite(packed=True)
    prior = _prior(structure, 3, validate=False)
    values = prior.sample((5,))
    torch.testing.assert_close(vmap(prior.log_prob)(values), prior.log_prob(values))


def test_constraint_checks_membership():
    c = fs.constraint(fs.Simplex())
    assert c.event_dim == 1
    assert c.check(torch.tensor([[0.5, 0.5], [0.5, 0.6]])).tolist() == [True, False]
    with pytest.raises(TypeError, match="fs.constraint: expected a structure"):
        fs.constraint("simplex")
    with pytest.raises(TypeError, match="fs.as_transform: expected a structure"):
        fs.as_transform("simplex")


def test_unsupported_structure_refuses_with_a_reason():
    with pytest.raises(fs.NotSupported, match=r"Orthogonal.*SpecialOrthogonal\(packed=True\)"):
        fs.as_transform(fs.Orthogonal())


def test_registration_is_opt_in():
    """A fresh interpreter: importing the library leaves biject_to alone; the call opts in."""
    code = textwrap.dedent(
        """
        import torch, functional_struct as fs
        c = fs.constraint(fs.PositiveDefinite(packed=True))
        try:
            torch.distributions.biject_to(c)
            print("registered on import")
        except NotImplementedError:
            print("not registered")
        fs.register_transforms()
        print(torch.distributions.biject_to(c))
        print(torch.distributions.transform_to(c))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    ).stdout.split("\n")
    assert out[0] == "not registered"
    assert out[1] == (
        "StructureTransform(PositiveDefinite(floor=1e-06, relative_floor=1e-05, "
        "method='cholesky', packed=True))"
    )
    assert out[2] == out[1]


def test_pyro_model_with_an_autoguide():
    """Pyro's AutoNormal guide finds the unconstrained space through biject_to."""
    pyro = pytest.importorskip("pyro")
    import pyro.distributions as dist
    from pyro.infer import SVI, Trace_ELBO
    from pyro.infer.autoguide import AutoNormal

    fs.register_transforms()
    structure = fs.PositiveDefinite(packed=True)
    data = torch.randn(50, 2) @ torch.tensor([[2.0, 0.0], [0.5, 0.3]])

    def model():
        base = dist.Normal(torch.zeros(3), 1.0).to_event(1)
        prior = dist.TransformedDistribution(base, [fs.as_transform(structure)])
        cov = pyro.sample("cov", prior)
        mvn = torch.distributions.MultivariateNormal(torch.zeros(2), covariance_matrix=cov)
        with pyro.plate("data", len(data)):
            pyro.sample("x", mvn, obs=data)

    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    guide = AutoNormal(model)
    svi = SVI(model, guide, pyro.optim.Adam({"lr": 0.05}), Trace_ELBO())
    losses = [svi.step() for _ in range(200)]
    assert losses[-1] < losses[0]
    cov = guide.median()["cov"]
    assert structure.contains(cov)
    torch.testing.assert_close(cov, data.T @ data / len(data), rtol=0.5, atol=0.5)


def test_elementwise_transforms_have_a_sign_and_a_cdf():
    t = fs.as_transform(fs.Chain(fs.Positive(), fs.Bounded(0.0, 5.0)))
    assert t.sign == 1
    d = TransformedDistribution(Normal(torch.tensor(0.0), 1.0), [fs.as_transform(fs.Positive())])
    assert d.cdf(torch.tensor(torch.nn.functional.softplus(torch.tensor(0.0)).item())) == 0.5
    with pytest.raises(NotImplementedError):
        _ = fs.as_transform(fs.PositiveDefinite(packed=True)).sign


def test_empty_batches():
    chain = fs.Chain(fs.Positive(), fs.Diagonal(packed=True))
    assert chain.forward_and_log_det(torch.zeros(0, 3))[1].shape == (0,)
    both = fs.Chain(fs.Positive(), fs.Bounded())
    assert both.forward_and_log_det(torch.zeros(2, 0))[1].shape == (2, 0)
    # (TransformedDistribution.log_prob of an empty batch fails inside torch's own
    # Independent.log_prob, which reshapes with -1; the transform's log-det does not.)
    t = fs.as_transform(fs.PositiveDefinite(packed=True))
    assert t.log_abs_det_jacobian(torch.zeros(0, 6), None).shape == (0,)
