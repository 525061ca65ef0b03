"""MOL: micro-expression, optical flow and landmarks from one 8-frame clip."""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from mol_jax import clip_format
from mol_jax.model.ccc import ChannelCorrespondenceConv
from mol_jax.model.fcc import FullyConnectedConv
from mol_jax.model.flow_head import FlowHead
from mol_jax.model.flow_refine import FlowRefinement
from mol_jax.model.heads import LandmarkHead, MicroExpressionHead
from mol_jax.model.layers import Conv2d

FEATURE_CHANNELS = 128
FEATURE_SIZE = 16


class ConvStack(nnx.Module):
  """Four linear convolutions, 128x128x1 -> 16x16x128, shared by all frames."""

  def __init__(self, *, rngs: nnx.Rngs):
    self.layers = nnx.List([
        Conv2d(1, 8, 4, stride=2, rngs=rngs),
        Conv2d(8, 32, 3, stride=2, rngs=rngs),
        Conv2d(32, 64, 2, stride=2, padding=1, rngs=rngs),
        Conv2d(64, FEATURE_CHANNELS, 1, rngs=rngs),
    ])

  def __call__(self, x: jax.Array) -> jax.Array:
    for layer in self.layers:
      x = layer(x)
    return x


class MOL(nnx.Module):
  """The MOL network.

  Every frame goes through the conv stack and the flow encoder once; the
  seven frame pairs are processed as one batched computation.
  """

  def __init__(self, num_classes: int = 3, neighbor_num: int = 4,
               dropout_rate: float = 0.5, use_fcc: bool = True, use_ccc: bool = True,
               flow_refinement: bool = False, *, rngs: nnx.Rngs):
    """`use_fcc` / `use_ccc` False (ablations) build the network without the
    FCC blocks (identity) or the CCC blocks (they add nothing);
    `flow_refinement` True adds `flow_refine` (`flow_refine.FlowRefinement`)
    after the flow head, starting at the official head's flow."""
    self.num_classes = num_classes
    self.neighbor_num = neighbor_num
    self.use_fcc, self.use_ccc = use_fcc, use_ccc
    self.flow_refinement = flow_refinement
    self.conv_stack = ConvStack(rngs=rngs)
    if use_fcc:
      self.fcc_1 = FullyConnectedConv(FEATURE_CHANNELS, rngs=rngs)
      self.fcc_2 = FullyConnectedConv(FEATURE_CHANNELS, rngs=rngs)
    positions = FEATURE_SIZE * FEATURE_SIZE
    if use_ccc:
      self.ccc_1 = ChannelCorrespondenceConv(positions, neighbor_num, rngs=rngs)
      self.ccc_2 = ChannelCorrespondenceConv(positions, neighbor_num, rngs=rngs)
    self.flownet = FlowHead(FEATURE_CHANNELS, rngs=rngs)
    self.ldm_predictor = LandmarkHead(FEATURE_CHANNELS, FEATURE_SIZE, rngs=rngs)
    self.mer_3dcnn = MicroExpressionHead(
        num_classes, FEATURE_CHANNELS, FEATURE_SIZE, 2 * (clip_format.NUM_FRAMES - 1),
        dropout_rate, rngs=rngs)
    # Built last, so that every official layer draws the same random numbers
    # as in the official network of the same seed.
    if flow_refinement:
      self.flow_refine = FlowRefinement(rngs=rngs)

  def __call__(self, video: jax.Array, *, train: bool = False,
               dropout_rng: jax.Array | None = None,
               flow_pairs: jax.Array | None = None, flow_clips: int | None = None,
               with_flow: bool = True, flow_pyramid: bool = False) -> dict[str, Any]:
    """Forward pass.

    Args:
      video: [batch, 8, 128, 128, 1] float32, normalised frames.
      train: BatchNorm uses batch statistics and updates its running ones.
      dropout_rng: key for the MER head's dropout (training only).
      flow_pairs: optional int [n] pair indices; the flow head then runs on
        those n pairs only (its cost is most of the network's). None runs all
        7, as the official model does.
      flow_clips: optional k; the flow head (and refinement) then runs on the
        first k clips of the batch only, and `flow` has k rows. None runs
        every clip, as the official model does.
      with_flow: False skips the flow head; the class logits and landmarks
        do not depend on it.
      flow_pyramid: also return the flow head's coarser predictions as
        `flow_pyramid` (for `losses.flow_pyramid_loss`).

    Returns:
      `logits` [batch, num_classes]; `flow` [batch (or k), 7 (or n), 128, 128, 2]
      with [..., 0] the x displacement from frame i to i+1 (refined by
      `flow_refine` when the model is built with it); `landmarks`
      [batch, 7, 68, 2] as (x, y) pixels of frame i+1; with `flow_pyramid`,
      `flow_pyramid` [level 1, ..., level 6] of the flow head (before any
      refinement), level l [batch, 7 (or n), 128 / 2^l, 128 / 2^l, 2].
    """
    if video.ndim != 5 or video.shape[1:] != (clip_format.NUM_FRAMES, clip_format.CROP_SIZE, clip_format.CROP_SIZE, 1):
      raise ValueError(
          f'video must be [batch, {clip_format.NUM_FRAMES}, {clip_format.CROP_SIZE}, {clip_format.CROP_SIZE}, 1], '
          f'got {video.shape}')
    num_pairs = video.shape[1] - 1
    features = self.conv_stack(video)
    self.sow(nnx.Intermediate, 'conv_stack_features', features)
    first, second = features[:, :num_pairs], features[:, 1:]
    if self.use_fcc:
      first, second = self.fcc_1(first, train=train), self.fcc_2(second, train=train)
      self.sow(nnx.Intermediate, 'fcc_1_features', first)
    if self.use_ccc:
      first, second = self.ccc_1(first), self.ccc_2(second)

    batch = video.shape[0]
    sequence = jnp.stack([first, second], axis=2).reshape(
        (batch, 2 * num_pairs) + first.shape[2:])
    out = {
        'logits': self.mer_3dcnn(sequence, dropout_rng if train else None),
        'landmarks': self.ldm_predictor(second),
    }
    if with_flow and flow_clips is not None:
      video, first, second = video[:flow_clips], first[:flow_clips], second[:flow_clips]
    if with_flow and flow_pairs is None:
      out['flow'] = self.flownet(video, first, second, train=train, pyramid=flow_pyramid)
    elif with_flow:
      n = flow_pairs.shape[0]
      frames = jnp.concatenate([video[:, flow_pairs], video[:, flow_pairs + 1]], axis=1)
      out['flow'] = self.flownet(
          frames, first[:, flow_pairs], second[:, flow_pairs], train=train,
          pairs=tuple((i, n + i) for i in range(n)), pyramid=flow_pyramid)
    if with_flow and flow_pyramid:
      out['flow'], out['flow_pyramid'] = out['flow']
    if with_flow and self.flow_refinement:
      # The frames of the pairs the flow head ran on, in its order.
      firsts = video[:, :num_pairs] if flow_pairs is None else video[:, flow_pairs]
      seconds = video[:, 1:] if flow_pairs is None else video[:, flow_pairs + 1]
      out['flow'] = self.flow_refine(firsts, seconds, out['flow'])
    return out


def create_model(num_classes: int = 3, neighbor_num: int = 4,
                 dropout_rate: float = 0.5, seed: int = 0, use_fcc: bool = True,
                 use_ccc: bool = True, flow_refinement: bool = False) -> MOL:
  """A freshly initialised MOL: `MOL(..., rngs=nnx.Rngs(seed))` up to float rounding.

  Built eagerly, the ~90 initialisers compile one by one (about a minute on
  a 2-core CPU). Here they run as one program compiled without LLVM
  optimisation: it runs once, so compile time is what counts. Call it at
  top level; for shapes only, inside a trace, use `abstract_model`.
  """
  # Normalised, positional arguments: the cache keys on them, and `1` and
  # `True` (or a numpy bool from a config) must not compile twice.
  graphdef, init = _compiled_init(int(num_classes), int(neighbor_num), float(dropout_rate),
                                  bool(use_fcc), bool(use_ccc), bool(flow_refinement))
  return nnx.merge(graphdef, init(jnp.asarray(seed, jnp.int32)))


@functools.lru_cache(maxsize=8)
def _compiled_init(num_classes: int, neighbor_num: int, dropout_rate: float,
                   use_fcc: bool, use_ccc: bool, flow_refinement: bool):
  """(graphdef, jitted seed -> state) for one model shape.

  Cached so that every LOSO fold after the first reuses the compiled program
  (about 15 s each on a 2-core CPU) and only runs it.
  """
  def init(seed):
    model = MOL(num_classes, neighbor_num, dropout_rate, use_fcc, use_ccc, flow_refinement,
                rngs=nnx.Rngs(jax.random.key(seed)))
    return nnx.split(model)

  graphdef, _ = nnx.eval_shape(lambda: init(jnp.int32(0)))
  return graphdef, jax.jit(lambda s: init(s)[1],
                           compiler_options={'xla_backend_optimization_level': 0})


def abstract_model(num_classes: int = 3, neighbor_num: int = 4,
                   dropout_rate: float = 0.5, use_fcc: bool = True,
                   use_ccc: bool = True, flow_refinement: bool = False) -> MOL:
  """A MOL of shape-only arrays, to be filled from a checkpoint or weights."""
  return nnx.eval_shape(lambda: MOL(num_classes, neighbor_num, dropout_rate, use_fcc,
                                    use_ccc, flow_refinement, rngs=nnx.Rngs(0)))

