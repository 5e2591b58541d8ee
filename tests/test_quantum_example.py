"""examples/quantum.py at small size: gate ensembles reach 1 - 1e-6, tomography's estimates."""

import cmath
import importlib.util
import sys
from pathlib import Path

import pytest
import torch

import functional_struct as fs

EXAMPLES = Path(__file__).parent.parent / "examples"


@pytest.fixture(scope="module")
def quantum():
    sys.path.insert(0, str(EXAMPLES))  # the example imports _shared
    try:
        spec = importlib.util.spec_from_file_location("quantum", EXAMPLES / "quantum.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(EXAMPLES))
    return module


@pytest.fixture(scope="module")
def gate(quantum):
    return quantum.gate_problem(3, 16, 0.0, torch.Generator().manual_seed(0))


def test_riemannian_ensemble_reaches_the_target(quantum, gate):
    target, inputs, outputs = gate
    gates, hits, _, _ = quantum.fit_gate_riemannian(
        target, inputs, outputs, 4, 300, torch.Generator().manual_seed(1)
    )
    assert fs.Unitary().contains(gates).all()
    infidelity = 1 - quantum.gate_fidelity(target, gates)
    assert infidelity.min() <= quantum.TARGET
    assert (hits > 0).any()
    assert hits[hits > 0].min() <= 300


def test_raw_ensemble_reaches_the_target(quantum, gate):
    target, inputs, outputs = gate
    gates, hits, curve, _ = quantum.fit_gate_raw(
        fs.Unitary(method="expm"), target, inputs, outputs, 4, 400, torch.Generator().manual_seed(1)
    )
    assert fs.Unitary().contains(gates).all()
    assert (1 - quantum.gate_fidelity(target, gates)).min() <= quantum.TARGET
    assert curve[-1] < curve[0]


def test_gate_fidelity_is_one_up_to_a_global_phase(quantum, gate):
    target = gate[0]
    turned = target * cmath.exp(0.7j)
    assert quantum.gate_fidelity(target, turned).item() == pytest.approx(1, abs=1e-12)
    d = target.shape[-1]
    assert quantum.gate_fidelity(target, torch.zeros_like(target)).item() == pytest.approx(
        1 / (d + 1)
    )


def test_tomography(quantum):
    result = quantum.tomography(300, 200, torch.Generator().manual_seed(0))
    density = fs.DensityMatrix()
    li = result["estimates"]["linear inversion"]
    assert torch.linalg.eigvalsh(li).min() < 0
    assert not density.contains(li)
    torch.testing.assert_close(li.diagonal().sum().real, torch.tensor(1.0, dtype=torch.float64))
    fidelity = result["fidelity"]
    for name in ("MLE, DensityMatrix()", "MLE, DensityMatrix(rank=2)"):
        assert density.contains(result["estimates"][name])
        assert fidelity[name] > 0.95
        assert fidelity[name] > fidelity["DensityMatrix().project(LI)"]
    assert fs.DensityMatrix(rank=2).contains(result["estimates"]["MLE, DensityMatrix(rank=2)"])
    assert result["nll"]["MLE, DensityMatrix()"] <= result["truth_nll"]


def test_linear_inversion_of_exact_probabilities_is_the_state(quantum):
    truth = quantum.true_state()
    probs = quantum.outcome_probabilities(truth, quantum.setting_bases(3))
    torch.testing.assert_close(quantum.linear_inversion(probs), truth)
    torch.testing.assert_close(quantum.uhlmann_fidelity(truth, truth), 1.0)
