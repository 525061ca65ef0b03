"""The heads' own layers (`mol_jax.model.heads`): the space-time convolution
against Flax's Conv, and dropout only in training."""

import numpy as np
import jax
import jax.numpy as jnp
from flax import nnx

from mol_jax.model.heads import space_time_conv

RNG = np.random.default_rng(0)


def test_space_time_conv_matches_flax_conv3d():
  layer = nnx.Conv(16, 5, (2, 2, 5), strides=(2, 2, 1), padding='VALID', rngs=nnx.Rngs(0))
  x = jnp.asarray(RNG.standard_normal((2, 16, 16, 14, 16)), jnp.float32)
  got = space_time_conv(x, layer.kernel[...], layer.bias[...])
  np.testing.assert_allclose(got, layer(x), rtol=1e-5, atol=1e-5)


def test_dropout_only_in_training():
  from mol_jax.model.heads import MicroExpressionHead
  head = MicroExpressionHead(3, rngs=nnx.Rngs(0))
  x = jnp.asarray(np.random.default_rng(0).standard_normal((2, 14, 16, 16, 128)), jnp.float32)
  np.testing.assert_array_equal(head(x), head(x))
  a, b = head(x, jax.random.key(0)), head(x, jax.random.key(1))
  assert not np.allclose(a, b)
  np.testing.assert_array_equal(a, head(x, jax.random.key(0)))
