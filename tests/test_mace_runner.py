"""Divergence detection: the validation curve (diverged) and mace's own error text (failure_status)."""

from __future__ import annotations

import pytest

from ftbench.training.mace_runner import diverged, failure_status


def test_no_curve_is_diverged():
    assert diverged([], 50.0) == "no validation epochs recorded"


def test_non_finite_loss_at_any_epoch_is_diverged():
    curve = [{"epoch": None, "loss": 1.0}, {"epoch": 0, "loss": float("nan")}, {"epoch": 1, "loss": 0.5}]
    assert diverged(curve, 50.0) == "non-finite validation loss at epoch 0"
    assert diverged([{"epoch": 0}], 50.0) == "non-finite validation loss at epoch 0"  # no loss at all


def test_only_the_last_epoch_force_rmse_counts():
    # epoch 0 is far above the limit, the last epoch (1) is below: not diverged
    curve = [{"epoch": 0, "loss": 3.0, "rmse_f": 90.0}, {"epoch": 1, "loss": 1.0, "rmse_f": 49.9}]
    assert diverged(curve, 50.0) is None
    curve[1]["rmse_f"] = 50.1
    assert diverged(curve, 50.0) == "validation force RMSE 50.1 eV/A at epoch 1 (head None) above 50.0"


def test_any_head_of_the_last_epoch_counts():
    curve = [
        {"epoch": 2, "loss": 1.0, "rmse_f": 0.2, "head": "Default"},
        {"epoch": 2, "loss": 1.0, "rmse_f": 80.0, "head": "pt_head"},
    ]
    assert "(head pt_head) above 50.0" in diverged(curve, 50.0)


@pytest.mark.parametrize(
    "text, status",
    [
        ("RuntimeError: Loss is NaN", "diverged"),
        ("ValueError: energies are nan at step 3", "diverged"),
        ("RuntimeError: gradient is inf", "diverged"),
        ("FloatingPointError: Infinity in forces", "diverged"),
        ("RuntimeError: non-finite loss", "diverged"),
        # words that merely contain "nan" or "inf" are ordinary failures
        ("RuntimeError: inferred batch size differs from the input", "failed"),
        ("KeyError: 'info'", "failed"),
        ("FileNotFoundError: no such file: finance.xyz", "failed"),
        ("RuntimeError: CUDA out of memory", "failed"),
    ],
)
def test_failure_status_from_error_text(text, status):
    assert failure_status(text) == status
