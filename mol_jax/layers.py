"""Small layers with PyTorch semantics, shared by every MOL block.

The official model runs its seven frame pairs one after another, so every
BatchNorm in training mode sees one pair (or one frame) at a time and updates
its running statistics once per call. We run all pairs as one batched
computation; `GroupedBatchNorm` keeps the official numbers by computing batch
statistics per group (pair or frame) and folding the sequence of running-stat
updates into one closed-form step.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

BN_EPS = 1e-5
BN_MOMENTUM = 0.1
LEAKY_SLOPE = 0.1


def leaky_relu(x: jax.Array) -> jax.Array:
  return jnp.where(x >= 0, x, LEAKY_SLOPE * x)


def running_update_weights(update_order: Sequence[int], num_groups: int,
                           momentum: float = BN_MOMENTUM) -> tuple[float, np.ndarray]:
  """Weights of the closed form of a sequence of momentum updates.

  Applying `r <- (1 - m) r + m s[g]` for g in `update_order` equals
  `r <- w_old r + sum_g w[g] s[g]`.

  Returns:
    (w_old, w) with w of shape [num_groups].
  """
  n = len(update_order)
  w = np.zeros(num_groups, np.float64)
  for step, group in enumerate(update_order):
    w[group] += momentum * (1.0 - momentum) ** (n - 1 - step)
  return (1.0 - momentum) ** n, w


class GroupedBatchNorm(nnx.Module):
  """BatchNorm over the last axis with `torch.nn.BatchNorm2d` semantics.

  Input `[batch, groups, ..., channels]`. In training mode each group is
  normalised with its own batch statistics (biased variance), as if the
  official model had called the layer once per group, and the running
  statistics take the official sequence of updates (unbiased variance,
  momentum 0.1) given by `update_order`. In eval mode the running statistics
  are used.
  """

  def __init__(self, num_features: int, *, rngs: nnx.Rngs | None = None):
    del rngs
    self.num_features = num_features
    self.scale = nnx.Param(jnp.ones((num_features,), jnp.float32))
    self.bias = nnx.Param(jnp.zeros((num_features,), jnp.float32))
    self.mean = nnx.BatchStat(jnp.zeros((num_features,), jnp.float32))
    self.var = nnx.BatchStat(jnp.ones((num_features,), jnp.float32))

  def __call__(self, x: jax.Array, *, train: bool,
               update_order: Sequence[int] | None = None) -> jax.Array:
    if not train:
      inv = jax.lax.rsqrt(self.var[...] + BN_EPS) * self.scale[...]
      return (x - self.mean[...]) * inv + self.bias[...]
    num_groups = x.shape[1]
    reduce_axes = (0,) + tuple(range(2, x.ndim - 1))
    count = int(np.prod([x.shape[a] for a in reduce_axes]))
    mean = jnp.mean(x, axis=reduce_axes, keepdims=True)
    centred = x - mean
    var = jnp.mean(jnp.square(centred), axis=reduce_axes, keepdims=True)
    y = centred * (jax.lax.rsqrt(var + BN_EPS) * self.scale[...]) + self.bias[...]

    order = tuple(range(num_groups)) if update_order is None else tuple(update_order)
    w_old, w = running_update_weights(order, num_groups)
    w = jnp.asarray(w, jnp.float32)
    group_mean = mean.reshape(num_groups, self.num_features)
    group_var = var.reshape(num_groups, self.num_features) * (count / max(count - 1, 1))
    # Running statistics never carry gradients.
    self.mean[...] = jax.lax.stop_gradient(w_old * self.mean[...] + w @ group_mean)
    self.var[...] = jax.lax.stop_gradient(w_old * self.var[...] + w @ group_var)
    return y


class ConvBNLeaky(nnx.Module):
  """FlowNet's `conv`: Conv2d without bias, BatchNorm, LeakyReLU(0.1)."""

  def __init__(self, in_features: int, out_features: int, kernel_size: int,
               stride: int = 1, padding: int | None = None, *, rngs: nnx.Rngs):
    pad = (kernel_size - 1) // 2 if padding is None else padding
    self.conv = nnx.Conv(in_features, out_features, (kernel_size, kernel_size),
                         strides=stride, padding=[(pad, pad), (pad, pad)],
                         use_bias=False, rngs=rngs)
    self.bn = GroupedBatchNorm(out_features)

  def __call__(self, x: jax.Array, *, train: bool,
               update_order: Sequence[int] | None = None) -> jax.Array:
    """x: [batch, groups, height, width, channels]."""
    return leaky_relu(self.bn(self.conv(x), train=train, update_order=update_order))


class TorchConvTranspose(nnx.Module):
  """`torch.nn.ConvTranspose2d(k, stride=2, padding=p, bias=False)`.

  Implemented as a forward convolution over the stride-dilated input, so the
  kernel is stored as the equivalent forward kernel `[kh, kw, in, out]`
  (the PyTorch kernel flipped in space; `convert.py` does the flip).
  """

  def __init__(self, in_features: int, out_features: int, kernel_size: int = 4,
               stride: int = 2, padding: int = 1, *, rngs: nnx.Rngs):
    self.stride = stride
    self.pad = kernel_size - 1 - padding
    init = nnx.initializers.lecun_normal()
    self.kernel = nnx.Param(init(rngs.params(), (kernel_size, kernel_size,
                                                 in_features, out_features)))

  def __call__(self, x: jax.Array) -> jax.Array:
    """x: [..., height, width, in] -> [..., stride*height, stride*width, out]."""
    lead = x.shape[:-3]
    y = jax.lax.conv_general_dilated(
        x.reshape((-1,) + x.shape[-3:]), self.kernel[...], window_strides=(1, 1),
        padding=[(self.pad, self.pad)] * 2, lhs_dilation=(self.stride, self.stride),
        dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
    return y.reshape(lead + y.shape[1:])
