"""Small-displacement refinement of the flow head's output (an option of MOL).

The official FlowNetC-style head sees the second frame only through the
correlation of the two frames' conv3 maps at 16x16, whose displacement steps
are 16 input pixels; every full-resolution skip of its decoder comes from the
first frame. Micro-expression motion is 0.1-3 px, far below that step: it
reaches the head only as small changes of correlation values between
positions 16 px apart. FlowNet 2.0 met the same
limit with a small-displacement network whose first layer is a stride-1
convolution on the frame pair. `FlowRefinement` is a small network of that
kind: per frame pair, at 128x128, stride 1, it reads both frames, their
difference and the official head's flow, and adds a residual flow to it.

Its last layer starts at zero, so a model with the refinement computes
exactly the official network's flow until training moves it.

Cost of one forward pass of one clip (all 7 pairs), measured on a 2-core
CPU: 4.8 GFLOP (XLA's cost analysis) against the official flow head's 26.3
GFLOP, 18 %; 51 ms against the head's 332 ms; 21 k parameters against the
head's 39.7 M.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from mol_jax.model.layers import Conv2d, leaky_relu

# first frame, second frame, their difference, the flow (2), the first
# frame's spatial gradient (2).
INPUT_CHANNELS = 7
# Gain on the temporal difference and the spatial gradient. The frames are
# normalised to (x - mean) / (max - mean), about 1/130 per gray level, so a
# 0.2 px motion changes an edge pixel by ~0.01: a hundredth of the frames'
# own range, which the first layer's random filters would drown. The gain
# brings both to the frames' order at initialisation.
MOTION_GAIN = 30.0
# Dilation of each hidden layer: the receptive field grows to 17x17 pixels
# at the cost of three 3x3 layers. A small motion is estimated from the
# temporal difference against the spatial gradient over a window (the
# aperture problem); a face's action-unit motion is smooth over ~10 px.
DILATIONS = (1, 2, 4)


def spatial_gradient(frames: jax.Array) -> jax.Array:
  """Central differences along x and y (one-sided at the border).

  Args:
    frames: [..., height, width, 1].

  Returns:
    [..., height, width, 2], channel 0 d/dx, channel 1 d/dy.
  """
  def central(x, axis):
    # Edge padding makes the border a one-sided half difference, not a jump
    # to zero that would read as a strong edge around the whole crop.
    pad = [(0, 0)] * x.ndim
    pad[axis] = (1, 1)
    padded = jnp.pad(x, pad, mode='edge')
    size = x.shape[axis]
    ahead = jax.lax.slice_in_dim(padded, 2, size + 2, axis=axis)
    behind = jax.lax.slice_in_dim(padded, 0, size, axis=axis)
    return 0.5 * (ahead - behind)
  return jnp.concatenate([central(frames, frames.ndim - 2),
                          central(frames, frames.ndim - 3)], axis=-1)


class FlowRefinement(nnx.Module):
  """Residual flow from the frame pair at full resolution, stride 1.

  `len(DILATIONS)` 3x3 convolutions with bias and LeakyReLU(0.1) (the flow
  head's nonlinearity), then a 3x3 convolution to 2 channels that starts at
  zero. No BatchNorm: the refinement then computes the same function in
  training and evaluation, and the batch statistics of a 128x128 map of one
  pair would mostly measure the face, not the motion. The hidden layers'
  dilations (`DILATIONS`) give a receptive field of 17x17 pixels (19x19
  with the gradient's stencil): enough for a few pixels of residual motion;
  larger motion is the official head's.
  """

  def __init__(self, features: int = 32, *, rngs: nnx.Rngs):
    self.hidden = nnx.List([
        Conv2d(INPUT_CHANNELS if i == 0 else features, features, 3, 1, 1, rngs=rngs)
        for i in range(len(DILATIONS))])
    self.predict = Conv2d(features, 2, 3, 1, 1, rngs=rngs)
    # Zero output at initialisation: the model's flow is then the official
    # head's, whatever the rest of the network was loaded with.
    self.predict.kernel[...] = jnp.zeros_like(self.predict.kernel[...])

  def __call__(self, first: jax.Array, second: jax.Array, flow: jax.Array) -> jax.Array:
    """The official flow plus a learnt residual.

    Args:
      first: [batch, pairs, 128, 128, 1], the first frame of each pair.
      second: [batch, pairs, 128, 128, 1], the second frame of each pair.
      flow: [batch, pairs, 128, 128, 2], the flow head's output (channel 0
        the x displacement).

    Returns:
      [batch, pairs, 128, 128, 2], `flow` plus the residual.
    """
    # The spatial gradient of the first frame is given explicitly: to first
    # order a small motion u satisfies second - first = -grad(first) . u
    # (brightness constancy), the regime of 0.1-3 px motion. With both terms
    # at every pixel, the first layer can compare the temporal difference
    # with the local gradient at once, instead of spending its few filters on
    # learning derivative filters from the raw frames.
    x = jnp.concatenate([first, second, MOTION_GAIN * (second - first),
                         flow.astype(first.dtype), MOTION_GAIN * spatial_gradient(first)],
                        axis=-1)
    for layer, dilation in zip(self.hidden, DILATIONS):
      x = leaky_relu(_dilated_conv(layer, x, dilation))
    return flow + self.predict(x).astype(flow.dtype)


def _dilated_conv(layer: Conv2d, x: jax.Array, dilation: int) -> jax.Array:
  """`layer(x)` (3x3, stride 1, same size) with its taps `dilation` pixels
  apart, through XLA's convolution on every backend.

  `Conv2d` picks im2col on CPU, which suits the flow head's small maps; on
  these 128x128 maps of 7-32 channels its patch matrix is the cost. On a
  2-core CPU, 7 pairs, 3x3 32 -> 32: XLA 15 ms forward and 177 ms forward
  plus backward, im2col 86 ms and 213 ms.
  """
  x, lead = x.reshape((-1,) + x.shape[-3:]), x.shape[:-3]
  y = jax.lax.conv_general_dilated(
      x, layer.kernel[...], (1, 1), [(dilation, dilation)] * 2, rhs_dilation=(dilation, dilation),
      dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
  y = y.reshape(lead + y.shape[1:])
  return y if layer.bias is None else y + layer.bias[...]
