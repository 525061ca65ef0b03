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

from mol_jax.model import conv

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
    # Statistics in float32 whatever the compute dtype; output in x's dtype.
    dtype, x = x.dtype, x.astype(jnp.promote_types(x.dtype, jnp.float32))
    scale, bias = self.scale[...].astype(x.dtype), self.bias[...].astype(x.dtype)
    if not train:
      inv = jax.lax.rsqrt(self.var[...] + BN_EPS) * scale
      return ((x - self.mean[...]) * inv + bias).astype(dtype)
    num_groups = x.shape[1]
    reduce_axes = (0,) + tuple(range(2, x.ndim - 1))
    count = int(np.prod([x.shape[a] for a in reduce_axes]))
    mean = jnp.mean(x, axis=reduce_axes, keepdims=True)
    centred = x - mean
    var = jnp.mean(jnp.square(centred), axis=reduce_axes, keepdims=True)
    y = centred * (jax.lax.rsqrt(var + BN_EPS) * scale) + bias

    order = tuple(range(num_groups)) if update_order is None else tuple(update_order)
    w_old, w = running_update_weights(order, num_groups)
    w = jnp.asarray(w, jnp.float32)
    group_mean = mean.reshape(num_groups, self.num_features)
    group_var = var.reshape(num_groups, self.num_features) * (count / max(count - 1, 1))
    # Running statistics never carry gradients.
    self.mean[...] = jax.lax.stop_gradient(w_old * self.mean[...] + w @ group_mean)
    self.var[...] = jax.lax.stop_gradient(w_old * self.var[...] + w @ group_var)
    # How many official calls this one stands for (torch's num_batches_tracked
    # grows by it), for the training-parity test.
    self.sow(nnx.Intermediate, 'running_updates', jnp.asarray(len(order), jnp.int32))
    return y.astype(dtype)


class Conv2d(nnx.Module):
  """`torch.nn.Conv2d` with square kernel, symmetric stride and padding."""

  def __init__(self, in_features: int, out_features: int, kernel_size: int,
               stride: int = 1, padding: int = 0, use_bias: bool = True, *,
               rngs: nnx.Rngs):
    self.stride, self.padding = stride, padding
    init = nnx.initializers.lecun_normal()
    self.kernel = nnx.Param(init(rngs.params(), (kernel_size, kernel_size,
                                                 in_features, out_features)))
    self.bias = nnx.Param(jnp.zeros((out_features,))) if use_bias else None

  def __call__(self, x: jax.Array, in_channels: np.ndarray | None = None) -> jax.Array:
    """x: [..., height, width, in] -> [..., out_height, out_width, out].

    `in_channels`, static indices, restricts the kernel to those input
    channels (x then has only those).
    """
    kernel = self.kernel[...]
    if in_channels is not None:
      kernel = kernel[:, :, in_channels]
    y = conv.conv2d(x, kernel, self.stride, self.padding)
    return y if self.bias is None else y + self.bias[...]


class ConvBNLeaky(nnx.Module):
  """FlowNet's `conv`: Conv2d without bias, BatchNorm, LeakyReLU(0.1)."""

  def __init__(self, in_features: int, out_features: int, kernel_size: int,
               stride: int = 1, padding: int | None = None, *, rngs: nnx.Rngs):
    pad = (kernel_size - 1) // 2 if padding is None else padding
    self.conv = Conv2d(in_features, out_features, kernel_size, stride, pad,
                       use_bias=False, rngs=rngs)
    self.bn = GroupedBatchNorm(out_features)

  def __call__(self, x: jax.Array, *, train: bool,
               update_order: Sequence[int] | None = None,
               in_channels: np.ndarray | None = None) -> jax.Array:
    """x: [batch, groups, height, width, channels]."""
    y = self.conv(x, in_channels)
    return leaky_relu(self.bn(y, train=train, update_order=update_order))


class ConvTranspose2d(nnx.Module):
  """`torch.nn.ConvTranspose2d(in, out, 4, stride=2, padding=1, bias=False)`.

  The kernel is PyTorch's weight `[in, out, 4, 4]` moved to `[4, 4, in, out]`.
  """

  def __init__(self, in_features: int, out_features: int, *, rngs: nnx.Rngs):
    init = nnx.initializers.lecun_normal()
    self.kernel = nnx.Param(init(rngs.params(), (4, 4, in_features, out_features)))

  def __call__(self, x: jax.Array) -> jax.Array:
    """x: [..., height, width, in] -> [..., 2 * height, 2 * width, out]."""
    return conv.conv_transpose2d(x, self.kernel[...])
