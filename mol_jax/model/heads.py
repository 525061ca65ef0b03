"""Task heads on MOL's enhanced feature maps: landmarks and micro-expression."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from mol_jax import clip_format
from mol_jax.model.layers import Conv2d



def dropout(x: jax.Array, rate: float, rng: jax.Array | None) -> jax.Array:
  """Inverted dropout; identity when `rng` is None (evaluation)."""
  if rng is None or rate == 0.0:
    return x
  keep = jax.random.bernoulli(rng, 1.0 - rate, x.shape)
  return jnp.where(keep, x / (1.0 - rate), 0.0)


class LandmarkHead(nnx.Module):
  """68 facial landmarks in pixels from one 16x16x128 map."""

  def __init__(self, channels: int = 128, map_size: int = 16, *, rngs: nnx.Rngs):
    self.convldm = Conv2d(channels, 32, 3, rngs=rngs)
    self.fc1 = nnx.Linear(32 * (map_size - 2) ** 2, 512, rngs=rngs)
    self.fc2 = nnx.Linear(512, 2 * clip_format.NUM_LANDMARKS, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    """x: [..., 16, 16, 128] -> [..., 68, 2] as (x, y) pixels of the 128x128 crop."""
    y = jax.nn.relu(self.convldm(x))
    y = y.reshape(y.shape[:-3] + (-1,))  # (height, width, channel) order
    y = self.fc2(jax.nn.relu(self.fc1(y)))
    return y.reshape(y.shape[:-1] + (clip_format.NUM_LANDMARKS, 2))


def space_time_conv(x: jax.Array, kernel: jax.Array, bias: jax.Array) -> jax.Array:
  """3-D convolution, VALID, with stride equal to the kernel in space and 1 in time.

  Space is cut into non-overlapping patches, so the convolution is one
  matmul over (time tap, patch pixel, channel) patches; XLA's own 3-D
  convolution ran at a few GFLOP/s on CPU (docs/PERFORMANCE.md).

  Args:
    x: [batch, height, width, time, in].
    kernel: [kh, kw, kt, in, out] (the `nnx.Conv` layout).
    bias: [out].

  Returns:
    [batch, height // kh, width // kw, time - kt + 1, out].
  """
  kh, kw, kt, cin, cout = kernel.shape
  b, h, w, t, _ = x.shape
  oh, ow, ot = h // kh, w // kw, t - kt + 1
  x = x[:, :oh * kh, :ow * kw].reshape(b, oh, kh, ow, kw, t, cin)
  x = jnp.transpose(x, (0, 1, 3, 5, 2, 4, 6)).reshape(b, oh, ow, t, kh * kw * cin)
  patches = jnp.concatenate([x[:, :, :, i:i + ot] for i in range(kt)], axis=-1)
  kernel = jnp.transpose(kernel, (2, 0, 1, 3, 4)).reshape(kt * kh * kw * cin, cout)
  return jnp.einsum('bhwtk,ko->bhwto', patches, kernel) + bias


class MicroExpressionHead(nnx.Module):
  """3-D CNN classifier over the sequence of 14 enhanced maps."""

  def __init__(self, num_classes: int, channels: int = 128, map_size: int = 16,
               sequence_length: int = 14, dropout_rate: float = 0.5, *,
               rngs: nnx.Rngs):
    self.dropout_rate = dropout_rate
    # Parameters only; applied by `space_time_conv` (stride (2, 2, 1), VALID).
    self.conv3d = nnx.Conv(channels, 32, (2, 2, 5), strides=(2, 2, 1),
                           padding='VALID', rngs=rngs)
    pooled = (map_size // 4) ** 2 * ((sequence_length - 4) // 2)
    self.fc1 = nnx.Linear(32 * pooled, 256, rngs=rngs)
    self.fc2 = nnx.Linear(256, num_classes, rngs=rngs)

  def __call__(self, sequence: jax.Array, dropout_rng: jax.Array | None = None) -> jax.Array:
    """Class logits.

    Args:
      sequence: [batch, 14, 16, 16, 128], maps in the order
        [pair0 frame1, pair0 frame2, pair1 frame1, ...].
      dropout_rng: key for the two dropouts; None in evaluation.

    Returns:
      [batch, num_classes].
    """
    rngs = (None, None) if dropout_rng is None else jax.random.split(dropout_rng)
    x = jnp.moveaxis(sequence, 1, 3)  # [batch, height, width, time, channels]
    x = space_time_conv(x, self.conv3d.kernel[...], self.conv3d.bias[...])
    x = nnx.max_pool(x, (2, 2, 2), strides=(2, 2, 2))
    x = dropout(x, self.dropout_rate, rngs[0])
    x = x.reshape(x.shape[0], -1)  # (height, width, time, channel) order
    x = dropout(jax.nn.relu(self.fc1(x)), self.dropout_rate, rngs[1])
    return self.fc2(x)
