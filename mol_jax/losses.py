"""MOL's multi-task loss, as the official code defines it, with example masks.

All losses take `mask` [batch] (1 for real examples, 0 for padding) so that a
padded evaluation batch gives the same numbers as the unpadded one.

Beyond the official recipe, `FlowLossOptions` (from `config.loss`, all off
by default) changes how the flow term compares: its error kind, a scale of
the flow units, supervision of the flow head's coarser predictions and the
batch key it is trained against.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
import optax

from mol_jax import clip_format



def _masked_mean(per_example: jax.Array, mask: jax.Array) -> jax.Array:
  return jnp.sum(per_example * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def classification_loss(logits: jax.Array, labels: jax.Array, mask: jax.Array) -> jax.Array:
  """Cross-entropy, mean over examples. logits [batch, C]; labels [batch]."""
  return _masked_mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels), mask)


def flow_loss(flow: jax.Array, target: jax.Array, mask: jax.Array,
              num_pairs: int = 7) -> jax.Array:
  """Mean squared error over every element, divided by the pair count (T - 1).

  Args:
    flow, target: [batch, pairs, height, width, 2]; `pairs` may be a subset
      of the clip's pairs, which keeps the loss an unbiased estimate.
    mask: [batch].
    num_pairs: T - 1 of the clip (7), the official divisor.
  """
  per_example = jnp.mean(jnp.square(flow - target), axis=(1, 2, 3, 4))
  return _masked_mean(per_example, mask) / num_pairs


def landmark_loss(landmarks: jax.Array, target: jax.Array, mask: jax.Array) -> jax.Array:
  """Official landmark loss: per pair, the summed absolute error over the 136
  coordinates divided by the target's inter-pupil distance; summed over pairs
  and examples and divided by (examples x 68).

  Args:
    landmarks, target: [batch, pairs, 68, 2] (x, y) pixels.
    mask: [batch].
  """
  error = jnp.sum(jnp.abs(landmarks - target), axis=(-2, -1))
  per_pair = error / jnp.maximum(clip_format.inter_pupil_distance(target), 1e-6)
  num_points = landmarks.shape[-2]
  return jnp.sum(jnp.sum(per_pair, axis=1) * mask) / (
      jnp.maximum(jnp.sum(mask), 1.0) * num_points)


# Flow-loss levers (`config.loss`; docs/TRAINING.md). The official loss is
# `flow_loss` with kind 'mse', scale 1, the full-resolution prediction only,
# against the TV-L1 `flow`; `FlowLossOptions()` is exactly that.
FLOW_LOSSES = ('mse', 'epe', 'l1', 'charbonnier')
FLOW_TARGETS = ('flow', 'true_flow')
# Charbonnier's eps, in scaled units (after `flow_scale`).
CHARBONNIER_EPS = 1e-3
# The flow head's coarser predictions: level l (1..6) is 128 / 2^l pixels a side.
PYRAMID_LEVELS = 6


@dataclasses.dataclass(frozen=True)
class FlowLossOptions:
  """How the flow term compares the prediction with its target.

  Hashable, so a jitted step can take it as a static argument.

  Attributes:
    kind: one of `FLOW_LOSSES` (`flow_loss`).
    scale: prediction and target are multiplied by it before they are
      compared, so the loss sees flow in units of 1/scale px.
    pyramid_weights: () for the official full-resolution term alone, or one
      weight per coarser prediction, levels 1..6 (fine to coarse); each adds
      weight x the same loss at that level (`flow_pyramid_loss`).
    target: the batch key the flow is trained against (`FLOW_TARGETS`).
  """
  kind: str = 'mse'
  scale: float = 1.0
  pyramid_weights: tuple[float, ...] = ()
  target: str = 'flow'


OFFICIAL_FLOW = FlowLossOptions()


def parse_pyramid_weights(text: str) -> tuple[float, ...]:
  """`config.loss.flow_pyramid_weights` ('' or six comma-separated weights).

  Raises:
    ValueError: naming the field, unless '' or six finite weights >= 0.
  """
  text = str(text).strip()
  if not text:
    return ()
  error = ValueError(
      f"config.loss.flow_pyramid_weights must be '' (official: full resolution only) or "
      f'{PYRAMID_LEVELS} comma-separated weights >= 0 for the levels 1..{PYRAMID_LEVELS} '
      f"(fine to coarse), e.g. '0.005,0.01,0.02,0.08,0.32,0.32'; got {text!r}")
  try:
    weights = tuple(float(w) for w in text.split(','))
  except ValueError:
    raise error from None
  if len(weights) != PYRAMID_LEVELS or not all(math.isfinite(w) and w >= 0 for w in weights):
    raise error
  return weights


def flow_loss_options(loss_config: Any) -> FlowLossOptions:
  """The flow levers of `config.loss`, checked; fields it lacks are official.

  Raises:
    ValueError: naming the `config.loss` field and its allowed values.
  """
  get = loss_config.get if hasattr(loss_config, 'get') else (
      lambda name, default: getattr(loss_config, name, default))
  kind = get('flow_loss', 'mse')
  if kind not in FLOW_LOSSES:
    raise ValueError(f'config.loss.flow_loss must be one of {FLOW_LOSSES}, got {kind!r}')
  scale = get('flow_scale', 1.0)
  if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not (
      math.isfinite(scale) and scale > 0):
    raise ValueError(f'config.loss.flow_scale must be a finite number > 0 (1.0 = pixels, '
                     f'official), got {scale!r}')
  target = get('flow_target', 'flow')
  if target not in FLOW_TARGETS:
    raise ValueError(f'config.loss.flow_target must be one of {FLOW_TARGETS}, got {target!r}')
  return FlowLossOptions(kind=kind, scale=float(scale),
                         pyramid_weights=parse_pyramid_weights(get('flow_pyramid_weights', '')),
                         target=target)


def _per_element_error(diff: jax.Array, kind: str) -> jax.Array:
  """The error of each element of `diff` [..., 2] (each pixel's for 'epe': [...])."""
  if kind == 'mse':
    return jnp.square(diff)
  if kind == 'l1':
    # |d| with gradient sign(d): 0 where the prediction is exact, where
    # jnp.abs's gradient is 1 and would push every exact zero-flow pixel one way.
    return diff * jnp.sign(diff)
  if kind == 'charbonnier':
    return jnp.sqrt(jnp.square(diff) + CHARBONNIER_EPS ** 2)
  if kind == 'epe':
    # sqrt's gradient is infinite at 0 (an exact pixel: every still pixel of
    # a zero-flow start); the two wheres give it gradient 0 there instead.
    squared = jnp.sum(jnp.square(diff), axis=-1)
    nonzero = squared > 0
    return jnp.where(nonzero, jnp.sqrt(jnp.where(nonzero, squared, 1.0)), 0.0)
  raise ValueError(f'flow loss kind must be one of {FLOW_LOSSES}, got {kind!r}')


def flow_loss_of_kind(flow: jax.Array, target: jax.Array, mask: jax.Array,
                      num_pairs: int = 7, kind: str = 'mse', scale: float = 1.0) -> jax.Array:
  """`flow_loss` generalised: mean error of one kind, divided by the pair count.

  kind 'mse' mean of d^2 over every element (official); 'l1' mean of |d|;
  'charbonnier' mean of sqrt(d^2 + CHARBONNIER_EPS^2) over every element (so
  its floor is eps, not 0); 'epe' mean over pixels of |(dx, dy)|. d is
  (flow - target) x `scale`. 'mse' with scale 1 is `flow_loss` exactly.

  Args:
    flow, target: [batch, pairs, height, width, 2].
    mask: [batch].
    num_pairs: the official divisor (7), kept for every kind so that the
      weights stay comparable.
    kind: one of `FLOW_LOSSES` (static).
    scale: static; 1 leaves the pixels as they are.
  """
  if kind == 'mse' and scale == 1.0:
    return flow_loss(flow, target, mask, num_pairs)
  diff = flow - target if scale == 1.0 else flow * scale - target * scale
  error = _per_element_error(diff, kind)
  per_example = jnp.mean(error, axis=tuple(range(1, error.ndim)))
  return _masked_mean(per_example, mask) / num_pairs


def pyramid_targets(target: jax.Array, levels: int = PYRAMID_LEVELS) -> list[jax.Array]:
  """The flow target at each coarser level, in that level's pixels.

  Level l averages each 2^l x 2^l block (area downsampling) and divides the
  vectors by 2^l, since one of its pixels is 2^l full-resolution pixels: a
  constant flow v becomes v / 2^l.

  Args:
    target: [batch, pairs, height, width, 2], height and width multiples of 2^levels.

  Returns:
    [target at level 1, ..., level `levels`], level l [batch, pairs, height / 2^l,
    width / 2^l, 2].
  """
  out = []
  for _ in range(levels):
    *lead, height, width, channels = target.shape
    if height % 2 or width % 2:
      raise ValueError(f'flow target of {height}x{width} pixels cannot be halved')
    blocks = target.reshape(tuple(lead) + (height // 2, 2, width // 2, 2, channels))
    # The mean of 2x2 blocks halves the size; / 2 converts to the coarser pixels.
    target = jnp.mean(blocks, axis=(-4, -2)) / 2.0
    out.append(target)
  return out


def flow_pyramid_loss(flow: jax.Array, pyramid: list[jax.Array] | None, target: jax.Array,
                      mask: jax.Array, num_pairs: int = 7,
                      options: FlowLossOptions = OFFICIAL_FLOW) -> jax.Array:
  """The flow term under `options`: full resolution plus the weighted coarser levels.

  loss(flow0, target) + sum_l w_l loss(flow_l, `pyramid_targets`(target)[l - 1])
  with loss `flow_loss_of_kind(kind, scale)`. Without pyramid weights it is
  the full-resolution term alone; `OFFICIAL_FLOW` gives `flow_loss`.

  Args:
    flow: [batch, pairs, 128, 128, 2] the full-resolution prediction.
    pyramid: the flow head's coarser predictions, levels 1..6, level l
      [batch, pairs, 128 / 2^l, 128 / 2^l, 2]; needed with pyramid weights.
    target: [batch, pairs, 128, 128, 2] in pixels.
    mask: [batch].
  """
  loss = flow_loss_of_kind(flow, target, mask, num_pairs, options.kind, options.scale)
  if not options.pyramid_weights:
    return loss
  if pyramid is None or len(pyramid) != len(options.pyramid_weights):
    raise ValueError(f'flow pyramid weights {options.pyramid_weights} need the flow head\'s '
                     f'{len(options.pyramid_weights)} coarser predictions')
  for weight, prediction, level_target in zip(options.pyramid_weights, pyramid,
                                              pyramid_targets(target, len(pyramid))):
    if weight:
      loss = loss + weight * flow_loss_of_kind(prediction, level_target, mask, num_pairs,
                                               options.kind, options.scale)
  return loss
