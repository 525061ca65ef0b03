"""CCC: the graph-style channel correspondence convolution.

Each of the 128 channels is a graph node whose feature is its whole map (256
positions). Positions are linked to their k most similar positions (cosine
similarity of their channel vectors), and every channel aggregates, by max,
an edge function of its map and its map re-indexed through each neighbour
choice. The official code loops over channels and neighbours; here the
neighbour gather and both linear maps are single batched tensor ops.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx


def cosine_knn(features: jax.Array, k: int) -> jax.Array:
  """Top-k most similar positions by cosine similarity, self included.

  Args:
    features: [..., positions, channels].
    k: neighbours per position.

  Returns:
    int32 [..., positions, k], most similar first.
  """
  # The choice of neighbours is discrete: full float32 here even where the
  # compute dtype (bfloat16) or the backend's default matmul precision is lower.
  features = features.astype(jnp.promote_types(features.dtype, jnp.float32))
  norm = jnp.sqrt(jnp.sum(jnp.square(features), axis=-1, keepdims=True))
  unit = features / jnp.maximum(norm, 1e-12)
  sim = jnp.einsum('...pc,...qc->...pq', unit, unit,
                   precision=jax.lax.Precision.HIGHEST)
  return jax.lax.top_k(sim, k)[1]


@jax.custom_vjp
def neighbour_max(gathered: jax.Array, w2: jax.Array) -> jax.Array:
  """max_j of `W2` applied to each neighbour choice j of every channel's map.

  Args:
    gathered: [n, positions, k, channels], the maps re-indexed by neighbour j.
    w2: [positions_in, positions_out].

  Returns:
    [n, channels, positions_out].

  The gradient is JAX's own for `max` (shared equally by tied maxima), with
  its two matmuls written in the layouts a CPU multiplies fastest; the
  default transpose of this einsum ran the backward pass at under half the
  forward's FLOP rate (docs/PERFORMANCE.md).
  """
  return jnp.einsum('npjc,po->njco', gathered, w2).max(axis=1)


def _neighbour_max_fwd(gathered, w2):
  per_neighbour = jnp.einsum('npjc,po->njco', gathered, w2)
  out = per_neighbour.max(axis=1)
  return out, (gathered, w2, per_neighbour == out[:, None])


def _neighbour_max_bwd(residuals, cotangent):
  gathered, w2, is_max = residuals
  is_max = is_max.astype(cotangent.dtype)
  d_per_neighbour = is_max * (cotangent / jnp.sum(is_max, axis=1))[:, None]
  d_gathered = jnp.einsum('njco,po->njcp', d_per_neighbour, w2)
  d_w2 = jnp.einsum('njcp,njco->po', jnp.transpose(gathered, (0, 2, 3, 1)), d_per_neighbour)
  return jnp.transpose(d_gathered, (0, 3, 1, 2)), d_w2


neighbour_max.defvjp(_neighbour_max_fwd, _neighbour_max_bwd)


def channel_correspondence_conv(features: jax.Array, neighbors: jax.Array,
                                params: dict) -> jax.Array:
  """CCC update for each channel; a pure function of its parameters.

  With F_c the map of channel c and G_cj the same map gathered through
  neighbour choice j, the official edge function is
  `ReLU(W1 F_c + b1 + W2 ((G_cj - F_c) - F_c) + b2)`, max over j. As ReLU is
  monotone this is `ReLU((W1 - 2 W2) F_c + b1 + b2 + max_j W2 G_cj)`.

  Args:
    features: [batch, positions, channels], positions row-major (h * W + w).
    neighbors: int [batch, positions, k] from `cosine_knn`.
    params: `w1`, `w2` [positions_in, positions_out]; `b1`, `b2` [positions].

  Returns:
    [batch, positions, channels], to be added to `features`.
  """
  w1, w2 = params['w1'], params['w2']
  node = jnp.einsum('npc,po->nco', features, w1 - 2.0 * w2)
  gathered = jax.vmap(lambda f, idx: f[idx])(features, neighbors)  # [n, p, k, c]
  edge = neighbour_max(gathered, w2)
  out = jax.nn.relu(node + edge + (params['b1'] + params['b2']))
  return jnp.swapaxes(out, 1, 2)


class ChannelCorrespondenceConv(nnx.Module):
  """CCC block (`CCC_1` / `CCC_2` in the official weights)."""

  def __init__(self, positions: int = 256, neighbor_num: int = 4, *, rngs: nnx.Rngs):
    self.neighbor_num = neighbor_num
    init = nnx.initializers.lecun_normal()
    bias_init = nnx.initializers.uniform(2.0 / positions ** 0.5)
    self.w1 = nnx.Param(init(rngs.params(), (positions, positions)))
    self.b1 = nnx.Param(bias_init(rngs.params(), (positions,)) - 1.0 / positions ** 0.5)
    self.w2 = nnx.Param(init(rngs.params(), (positions, positions)))
    self.b2 = nnx.Param(bias_init(rngs.params(), (positions,)) - 1.0 / positions ** 0.5)

  def __call__(self, x: jax.Array) -> jax.Array:
    """x: [..., height, width, channels] -> x + CCC(x), same shape.

    Sows the neighbour indices and the CCC update as `nnx.Intermediate`
    (`neighbors`, `update`) for inspection and the parity test.
    """
    lead, (height, width, channels) = x.shape[:-3], x.shape[-3:]
    flat = x.reshape((-1, height * width, channels))
    neighbors = cosine_knn(flat, self.neighbor_num)
    params = {name: getattr(self, name)[...] for name in ('w1', 'b1', 'w2', 'b2')}
    update = channel_correspondence_conv(flat, neighbors, params)
    update = update.reshape(x.shape)
    self.sow(nnx.Intermediate, 'neighbors', neighbors.reshape(lead + neighbors.shape[1:]))
    self.sow(nnx.Intermediate, 'update', update)
    return x + update
