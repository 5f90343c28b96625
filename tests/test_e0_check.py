"""The fine-tune's check that mace used the requested E0s, at the precision the model keeps."""

from __future__ import annotations

import torch

from ftbench.training.finetune import e0s_differ

# the default run's sn2 E0s (results/e0/sn2/demo_gen2/estimated/n100.json)
EXPECTED = {1: -9.497282595935618, 6: -46.90333321740334, 9: -125.9829141294166, 17: -122.41237535226509}


def stored(dtype: torch.dtype, shift: float = 0.0) -> dict[int, float]:
    """The E0s as a model of that dtype holds them (mace keeps them in a tensor of the model's dtype)."""
    values = torch.tensor([e + shift for e in EXPECTED.values()], dtype=dtype)
    return dict(zip(EXPECTED, values.tolist(), strict=True))


def test_float32_rounding_is_not_a_different_e0():
    # the default run warned on 90 of 90 float32 fine-tunes before: -125.98291412941660 is kept as
    # -125.98291778564453
    assert not e0s_differ(stored(torch.float32), EXPECTED, torch.float32)
    assert not e0s_differ(stored(torch.float64), EXPECTED, torch.float64)


def test_a_different_e0_is_named_in_either_precision():
    assert e0s_differ(stored(torch.float32, 1e-3), EXPECTED, torch.float32)
    assert e0s_differ(stored(torch.float64, 1e-6), EXPECTED, torch.float64)
    assert e0s_differ({z: e for z, e in EXPECTED.items() if z != 17}, EXPECTED, torch.float64)
