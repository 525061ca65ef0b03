"""The circular convolution of the FCC blocks (`mol_jax.model.fcc`) against
`np.roll`."""

import numpy as np
import pytest

from mol_jax.model.fcc import circular_conv

RNG = np.random.default_rng(0)


def test_circular_conv_is_wraparound_cross_correlation():
  x = RNG.standard_normal((2, 6, 5, 3)).astype(np.float32)
  k_h = RNG.standard_normal((6, 3)).astype(np.float32)
  k_w = RNG.standard_normal((5, 3)).astype(np.float32)
  b = RNG.standard_normal(3).astype(np.float32)
  ref_h = sum(k_h[t] * np.roll(x, -t, axis=1) for t in range(6)) + b
  ref_w = sum(k_w[t] * np.roll(x, -t, axis=2) for t in range(5)) + b
  np.testing.assert_allclose(circular_conv(x, k_h, b, 'h'), ref_h, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(circular_conv(x, k_w, b, 'w'), ref_w, rtol=1e-5, atol=1e-5)
  with pytest.raises(ValueError, match='axis'):
    circular_conv(x, k_h, b, 'x')
