"""The channel-correspondence convolution (`mol_jax.model.ccc`) against the
official loop written out literally, and its hand-written gradient."""

import numpy as np
import jax
import jax.numpy as jnp

from mol_jax.model.ccc import channel_correspondence_conv, cosine_knn

RNG = np.random.default_rng(0)


def test_ccc_matches_literal_loops():
  """The official per-channel, per-neighbour loop, written out literally."""
  n, p, c, k = 2, 16, 5, 3
  f = RNG.standard_normal((n, p, c)).astype(np.float32)
  params = {name: RNG.standard_normal(shape).astype(np.float32) * 0.3
            for name, shape in [('w1', (p, p)), ('w2', (p, p)), ('b1', (p,)), ('b2', (p,))]}
  idx = np.asarray(cosine_knn(jnp.asarray(f), k))

  unit = f / np.maximum(np.linalg.norm(f, axis=-1, keepdims=True), 1e-12)
  sim = np.einsum('npc,nqc->npq', unit, unit)
  ref_idx = np.argsort(-sim, axis=-1, kind='stable')[..., :k]
  np.testing.assert_array_equal(idx, ref_idx)
  assert (idx[..., 0] == np.arange(p)).all(), 'self is its own nearest neighbour'

  fc = np.transpose(f, (0, 2, 1))  # [n, channel, position]
  ref = np.zeros((n, c, p), np.float32)
  for b in range(n):
    for ch in range(c):
      node = fc[b, ch]
      best = np.full(p, -np.inf, np.float32)
      for j in range(k):
        diff = fc[b, ch, idx[b, :, j]] - node
        edge = params['w1'].T @ node + params['b1'] + params['w2'].T @ (diff - node) + params['b2']
        best = np.maximum(best, np.maximum(edge, 0))
      ref[b, ch] = best
  got = channel_correspondence_conv(jnp.asarray(f), jnp.asarray(idx), params)
  np.testing.assert_allclose(np.transpose(got, (0, 2, 1)), ref, rtol=1e-4, atol=1e-5)


def test_ccc_gradient_matches_autodiff_of_the_plain_formula():
  from mol_jax.model.ccc import neighbour_max
  n, p, k, c = 3, 16, 4, 6
  gathered = jnp.asarray(RNG.standard_normal((n, p, k, c)), jnp.float32)
  w2 = jnp.asarray(RNG.standard_normal((p, p)), jnp.float32)
  plain = lambda g, w: jnp.einsum('npjc,po->njco', g, w).max(axis=1)
  np.testing.assert_array_equal(neighbour_max(gathered, w2), plain(gathered, w2))
  loss = lambda fn: lambda g, w: jnp.sum(jnp.sin(fn(g, w)))
  got = jax.grad(loss(neighbour_max), argnums=(0, 1))(gathered, w2)
  want = jax.grad(loss(plain), argnums=(0, 1))(gathered, w2)
  for a, b in zip(got, want):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
  # Ties (here: two identical neighbour choices) share the gradient as JAX's max does.
  tied = gathered.at[:, :, 1].set(gathered[:, :, 0])
  got = jax.grad(loss(neighbour_max))(tied, w2)
  want = jax.grad(loss(plain))(tied, w2)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
