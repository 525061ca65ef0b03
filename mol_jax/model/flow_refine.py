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
difference, the first frame's gradient, damped Lucas-Kanade estimates of
the pair's motion over three window sizes (`lucas_kanade`, parameter-free)
and the official head's flow, and adds a residual flow to it.

Why the Lucas-Kanade inputs: a small motion is the ratio of windowed
products of the temporal difference and the spatial gradient (brightness
constancy); a few ReLU layers approximate neither products nor a ratio
well, and a micro-expression set gives them a few hundred pairs to learn
from. Given the estimates, the layers learn where to trust which window and
how to correct them towards the targets (docs/RESULTS.md, "The flow head":
the layers without these inputs reached 0.80 of the zero-flow error on the
probe, with them 0.62, TV-L1 0.54).

Its last layer starts at zero, so a model with the refinement computes
exactly the official network's flow until training moves it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from mol_jax.model.layers import Conv2d, leaky_relu

# Lucas-Kanade estimates' Gaussian windows (sigma, pixels), the frames'
# pre-blur (sigma) and the Tikhonov term added to the structure tensor's
# diagonal, in the normalised frames' units (1 gray level ~ 1/130): about a
# gradient of 4 gray levels per pixel, below which a window counts as
# untextured. Chosen on the demo set's held-out subject by the estimates'
# own error (`mol_jax.tools.lucas_kanade_baseline`).
LK_WINDOWS = (2.0, 4.0, 8.0)
LK_PRE_BLUR = 0.7
LK_DAMPING = 1e-3
# The module's layout, stored with a checkpoint's model config: version 1
# (before the Lucas-Kanade inputs) read 7 input channels, and its weights do
# not fit this module.
VERSION = 2
# first frame, second frame, their difference, the flow (2), the first
# frame's spatial gradient (2), one Lucas-Kanade flow (2) per window.
INPUT_CHANNELS = 7 + 2 * len(LK_WINDOWS)
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


def _blur_matrix(size: int, sigma: float) -> np.ndarray:
  """[size, size] matrix that blurs a length-`size` signal with a normalised
  Gaussian of radius 3 sigma, the border continued by its edge value."""
  radius = int(np.ceil(3 * sigma))
  offsets = np.arange(-radius, radius + 1)
  taps = np.exp(-offsets ** 2 / (2 * sigma ** 2))
  taps /= taps.sum()
  matrix = np.zeros((size, size))
  for i in range(size):
    np.add.at(matrix[i], np.clip(i + offsets, 0, size - 1), taps)
  return matrix


def gaussian_blur(x: jax.Array, sigma: float) -> jax.Array:
  """Separable Gaussian blur (radius 3 sigma, edge padding) of every channel.

  As two matrix products with banded matrices rather than depthwise
  convolutions: on a CPU, XLA's depthwise convolution with a 49-tap kernel
  over 128x128 maps took longer than the whole flow head; the products are
  dense but a few MFLOP and run at matrix-multiply speed.

  Args:
    x: [..., height, width, channels].

  Returns:
    [..., height, width, channels].
  """
  rows = jnp.asarray(_blur_matrix(x.shape[-3], sigma), x.dtype)
  columns = jnp.asarray(_blur_matrix(x.shape[-2], sigma), x.dtype)
  x = jnp.einsum('vw,...hwc->...hvc', columns, x)
  return jnp.einsum('gh,...hwc->...gwc', rows, x)


def lucas_kanade(first: jax.Array, second: jax.Array, windows=LK_WINDOWS,
                 pre_blur: float = LK_PRE_BLUR, damping: float = LK_DAMPING) -> jax.Array:
  """Damped Lucas-Kanade flow from `first` to `second`, one per window.

  Per pixel, u = -(M + damping I)^-1 b, with M the Gaussian-windowed
  structure tensor of the pair's mean frame and b the windowed product of
  its gradient with the temporal difference: the least-squares solution of
  brightness constancy over the window, shrunk towards zero where the
  window has no texture.

  Args:
    first, second: [..., height, width, 1].

  Returns:
    [..., height, width, 2 * len(windows)], (x, y) displacement in pixels
    per window.
  """
  first, second = gaussian_blur(first, pre_blur), gaussian_blur(second, pre_blur)
  gradient = spatial_gradient(0.5 * (first + second))
  ix, iy, it = gradient[..., 0], gradient[..., 1], (second - first)[..., 0]
  products = jnp.stack([ix * ix, iy * iy, ix * iy, ix * it, iy * it], axis=-1)
  estimates = []
  for window in windows:
    m11, m22, m12, bx, by = jnp.moveaxis(gaussian_blur(products, window), -1, 0)
    m11, m22 = m11 + damping, m22 + damping
    det = m11 * m22 - m12 * m12
    estimates += [-(m22 * bx - m12 * by) / det, -(m11 * by - m12 * bx) / det]
  return jnp.stack(estimates, axis=-1)


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
                         flow.astype(first.dtype), MOTION_GAIN * spatial_gradient(first),
                         lucas_kanade(first, second)],
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
