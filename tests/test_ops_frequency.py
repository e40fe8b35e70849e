"""bdcore.ops.frequency: FIBA's low-frequency window on the unshifted FFT grid, against fftshift + a centred square."""

from __future__ import annotations

import pytest
import torch

from bdcore.ops.frequency import low_band_mask


@pytest.mark.parametrize(("h", "w", "beta"), [(64, 64, 0.1), (30, 45, 0.1), (17, 17, 0.2)])
def test_square_is_the_centred_window_of_the_shifted_spectrum(h: int, w: int, beta: float) -> None:
    b = int(min(h, w) * beta)
    shifted = torch.zeros(h, w, dtype=torch.bool)
    shifted[h // 2 - b : h // 2 + b + 1, w // 2 - b : w // 2 + b + 1] = True
    assert torch.equal(low_band_mask(h, w, beta), torch.fft.ifftshift(shifted))


def test_disk_counts_and_bad_window() -> None:
    assert int(low_band_mask(64, 64, 0.1, "disk").sum()) == sum(
        1 for y in range(-32, 32) for x in range(-32, 32) if y * y + x * x <= 6.4**2
    )
    with pytest.raises(ValueError, match="square' or 'disk"):
        low_band_mask(8, 8, 0.1, "ring")
