"""FlowNetC-style optical-flow head with a matmul-based correlation layer.

The official code needs a hand-built C++/CUDA correlation extension. Here the
correlation is one batched matmul (every position against every position of
the 16x16 map) followed by a static gather of the 21x21 dilated displacement
window, which XLA compiles for any backend.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from mol_jax.model.layers import Conv2d, ConvBNLeaky, ConvTranspose2d, leaky_relu

MAX_DISPLACEMENT = 20
DISPLACEMENT_STRIDE = 2
CORR_CHANNELS = (2 * MAX_DISPLACEMENT // DISPLACEMENT_STRIDE + 1) ** 2


@functools.lru_cache(maxsize=None)
def _displacement_table(height: int, width: int, max_displacement: int,
                        stride: int) -> tuple[np.ndarray, np.ndarray]:
  """Flat target position and validity of each (position, displacement)."""
  steps = np.arange(-max_displacement, max_displacement + 1, stride)
  y, x = np.meshgrid(np.arange(height), np.arange(width), indexing='ij')
  dy, dx = np.meshgrid(steps, steps, indexing='ij')
  ty = y.reshape(-1, 1) + dy.reshape(1, -1)
  tx = x.reshape(-1, 1) + dx.reshape(1, -1)
  valid = (ty >= 0) & (ty < height) & (tx >= 0) & (tx < width)
  target = np.where(valid, ty * width + tx, 0).astype(np.int32)
  return target, valid


def reachable_displacements(height: int, width: int,
                            max_displacement: int = MAX_DISPLACEMENT,
                            stride: int = DISPLACEMENT_STRIDE) -> np.ndarray:
  """Indices of the displacement channels that are not zero everywhere.

  On a 16x16 map a displacement beyond +-15 pixels never lands inside it, so
  216 of the 441 channels are always zero; skipping them (and the matching
  kernel rows of the next convolution) changes no output.
  """
  _, valid = _displacement_table(height, width, max_displacement, stride)
  return np.flatnonzero(valid.any(axis=0))


def correlation(a: jax.Array, b: jax.Array,
                max_displacement: int = MAX_DISPLACEMENT,
                stride: int = DISPLACEMENT_STRIDE,
                channels: np.ndarray | None = None) -> jax.Array:
  """FlowNetC correlation (kernel 1), before its LeakyReLU.

  corr[..., y, x, i * D + j] = mean_c a[..., y, x, c] * b[..., y + dy_i, x + dx_j, c]
  with dy_i, dx_j in range(-max_displacement, max_displacement + 1, stride),
  D = 2 * max_displacement // stride + 1, and 0 where the target falls
  outside the map.

  Args:
    a, b: [..., height, width, features].
    channels: optional static indices into the D * D displacements to
      compute (e.g. `reachable_displacements`); default all.

  Returns:
    [..., height, width, D * D] (or [..., len(channels)]).
  """
  *lead, height, width, features = a.shape
  target, valid = _displacement_table(height, width, max_displacement, stride)
  if channels is not None:
    target, valid = target[:, channels], valid[:, channels]
  a2 = a.reshape((-1, height * width, features))
  b2 = b.reshape((-1, height * width, features))
  all_pairs = jnp.einsum('npc,nqc->npq', a2, b2) / features
  corr = jnp.take_along_axis(all_pairs, jnp.asarray(target)[None], axis=-1)
  corr = jnp.where(jnp.asarray(valid)[None], corr, 0.0)
  return corr.reshape(tuple(lead) + (height, width, target.shape[1]))


def _group_index(indices: list[int]) -> slice | np.ndarray:
  """A slice when the indices are a contiguous run (no gather needed)."""
  if indices == list(range(indices[0], indices[0] + len(indices))):
    return slice(indices[0], indices[0] + len(indices))
  return np.asarray(indices)


def _predict_flow(in_features: int, rngs: nnx.Rngs) -> Conv2d:
  return Conv2d(in_features, 2, 3, 1, 1, use_bias=False, rngs=rngs)


class FlowHead(nnx.Module):
  """Flow of each frame pair from the raw frames and MOL's enhanced maps."""

  def __init__(self, feature_channels: int = 128, *, rngs: nnx.Rngs):
    self.conv1 = ConvBNLeaky(1, 64, 6, 2, 2, rngs=rngs)
    self.conv2 = ConvBNLeaky(64, 128, 4, 2, 1, rngs=rngs)
    self.conv3 = ConvBNLeaky(128, 256, 2, 2, 0, rngs=rngs)
    self.conv_redir = ConvBNLeaky(256, 32, 1, 1, 0, rngs=rngs)
    self.conv3_1 = ConvBNLeaky(32 + CORR_CHANNELS + 2 * feature_channels, 256, 3, rngs=rngs)
    self.conv4 = ConvBNLeaky(256, 512, 3, 2, rngs=rngs)
    self.conv4_1 = ConvBNLeaky(512, 512, 3, rngs=rngs)
    self.conv5 = ConvBNLeaky(512, 512, 3, 2, rngs=rngs)
    self.conv5_1 = ConvBNLeaky(512, 512, 3, rngs=rngs)
    self.conv6 = ConvBNLeaky(512, 1024, 3, 2, rngs=rngs)
    self.conv6_1 = ConvBNLeaky(1024, 1024, 3, rngs=rngs)
    self.deconv5 = ConvTranspose2d(1024, 512, rngs=rngs)
    self.deconv4 = ConvTranspose2d(1026, 256, rngs=rngs)
    self.deconv3 = ConvTranspose2d(770, 128, rngs=rngs)
    self.deconv2 = ConvTranspose2d(386, 128, rngs=rngs)
    self.deconv1 = ConvTranspose2d(258, 64, rngs=rngs)
    self.deconv0 = ConvTranspose2d(130, 32, rngs=rngs)
    self.predict_flow6 = _predict_flow(1024, rngs)
    self.predict_flow5 = _predict_flow(1026, rngs)
    self.predict_flow4 = _predict_flow(770, rngs)
    self.predict_flow3 = _predict_flow(386, rngs)
    self.predict_flow2 = _predict_flow(258, rngs)
    self.predict_flow1 = _predict_flow(130, rngs)
    self.predict_flow0 = _predict_flow(35, rngs)
    for level in range(6, 0, -1):
      setattr(self, f'upsampled_flow{level}_to_{level - 1}',
              ConvTranspose2d(2, 2, rngs=rngs))

  def __call__(self, frames: jax.Array, enhanced_first: jax.Array,
               enhanced_second: jax.Array, *, train: bool,
               pairs: tuple[tuple[int, int], ...] | None = None,
               pyramid: bool = False) -> jax.Array | tuple[jax.Array, list[jax.Array]]:
    """Flow from the first to the second frame of each pair.

    Args:
      frames: [batch, frames, 128, 128, 1].
      enhanced_first: [batch, pairs, 16, 16, 128], MOL map of each first frame.
      enhanced_second: [batch, pairs, 16, 16, 128], MOL map of each second frame.
      train: BatchNorm mode.
      pairs: (first, second) indices into `frames` for each pair; default
        the consecutive pairs (i, i + 1).
      pyramid: also return the coarser predictions (predict_flow1 ..
        predict_flow6), which the decoder computes anyway, for a multi-scale
        loss (`losses.flow_pyramid_loss`).

    Returns:
      [batch, pairs, 128, 128, 2], channel 0 the x displacement; with
      `pyramid`, (that, [level 1, ..., level 6]) with level l
      [batch, pairs, 128 / 2^l, 128 / 2^l, 2], in the flow head's own units
      (no rescaling: the loss decides what they mean).
    """
    num_frames = frames.shape[1]
    if pairs is None:
      pairs = tuple((i, i + 1) for i in range(num_frames - 1))
    # The encoder runs once per frame; the official model ran it on the first
    # and then the second frame of every pair, which is this BatchNorm update
    # order.
    per_frame = [f for pair in pairs for f in pair]
    enc = lambda layer, x: layer(x, train=train, update_order=per_frame)
    pair = lambda layer, x: layer(x, train=train)
    conv1 = enc(self.conv1, frames)
    conv2 = enc(self.conv2, conv1)
    conv3 = enc(self.conv3, conv2)
    first = _group_index([a for a, _ in pairs])
    second = _group_index([b for _, b in pairs])

    redir = pair(self.conv_redir, conv3[:, first])
    reachable = reachable_displacements(*conv3.shape[2:4])
    corr = leaky_relu(correlation(conv3[:, first], conv3[:, second], channels=reachable))
    x = jnp.concatenate([redir, corr, enhanced_first, enhanced_second], axis=-1)
    # conv3_1's kernel rows for the always-zero correlation channels are skipped.
    num_redir = redir.shape[-1]
    num_in = self.conv3_1.conv.kernel.shape[2]
    rows = np.concatenate([np.arange(num_redir), num_redir + reachable,
                           np.arange(num_redir + CORR_CHANNELS, num_in)])
    conv3_1 = self.conv3_1(x, train=train, in_channels=rows)
    conv4_1 = pair(self.conv4_1, pair(self.conv4, conv3_1))
    conv5_1 = pair(self.conv5_1, pair(self.conv5, conv4_1))
    conv6_1 = pair(self.conv6_1, pair(self.conv6, conv5_1))

    skips = [conv5_1, conv4_1, conv3_1, conv2[:, first], conv1[:, first], frames[:, first]]
    deconvs = [self.deconv5, self.deconv4, self.deconv3, self.deconv2, self.deconv1, self.deconv0]
    features = conv6_1
    flow = self.predict_flow6(features)
    coarse_to_fine = [flow]
    for level, (skip, deconv) in enumerate(zip(skips, deconvs)):
      coarse = 6 - level
      up = getattr(self, f'upsampled_flow{coarse}_to_{coarse - 1}')
      features = jnp.concatenate([skip, leaky_relu(deconv(features)), up(flow)], axis=-1)
      flow = getattr(self, f'predict_flow{coarse - 1}')(features)
      coarse_to_fine.append(flow)
    if pyramid:
      return flow, coarse_to_fine[-2::-1]  # Levels 1 .. 6.
    return flow
