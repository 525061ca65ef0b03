"""MOL's multi-task loss, as the official code defines it, with example masks.

All losses take `mask` [batch] (1 for real examples, 0 for padding) so that a
padded evaluation batch gives the same numbers as the unpadded one.
"""

from __future__ import annotations

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
