"""Each MOL building block against a literal reference (PyTorch or loops)."""

import numpy as np
import pytest
import torch
import jax
import jax.numpy as jnp
from flax import nnx

from mol_jax.model import conv
from mol_jax.model.ccc import channel_correspondence_conv, cosine_knn
from mol_jax.model.fcc import circular_conv
from mol_jax.model.heads import space_time_conv
from mol_jax.model.flow_head import correlation, reachable_displacements
from mol_jax.model.layers import GroupedBatchNorm

RNG = np.random.default_rng(0)


def _nchw(x):
  return torch.tensor(np.ascontiguousarray(np.moveaxis(x, -1, 1)))


def _nhwc(t):
  return np.moveaxis(t.detach().numpy(), 1, -1)


@pytest.mark.parametrize('impl', ['xla', 'im2col', 'cols'])
@pytest.mark.parametrize('kernel,stride,padding', [(3, 1, 1), (3, 2, 1), (2, 2, 0), (4, 2, 1),
                                                   (3, 1, 0)])
def test_conv2d_matches_torch(impl, kernel, stride, padding):
  if impl == 'cols' and stride != 1:
    with pytest.raises(ValueError, match='stride 1'):
      conv.conv2d(jnp.zeros((1, 9, 9, 16)), jnp.zeros((kernel, kernel, 16, 12)), stride,
                  padding, impl=impl)
    return
  x = RNG.standard_normal((2, 9, 10, 16)).astype(np.float32)
  w = RNG.standard_normal((12, 16, kernel, kernel)).astype(np.float32)
  ref = _nhwc(torch.nn.functional.conv2d(_nchw(x), torch.tensor(w), stride=stride,
                                         padding=padding))
  got = conv.conv2d(jnp.asarray(x), jnp.asarray(np.transpose(w, (2, 3, 1, 0))), stride,
                    padding, impl=impl)
  np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


# `cols` is stride 1 only (test_conv2d_matches_torch checks that it refuses
# stride 2), so it has no stride-2 backward pass to compare.
@pytest.mark.parametrize('impl,kernel,stride,padding', [
    ('im2col', 3, 1, 1), ('im2col', 4, 2, 1), ('cols', 3, 1, 1)])
def test_conv2d_gradients_match_xla(impl, kernel, stride, padding):
  """The matmul layouts must also agree in the backward pass they exist for."""
  x = jnp.asarray(RNG.standard_normal((2, 8, 8, 16)), jnp.float32)
  w = jnp.asarray(RNG.standard_normal((kernel, kernel, 16, 3)), jnp.float32)
  grads = lambda impl: jax.grad(
      lambda x, w: jnp.sum(jnp.sin(conv.conv2d(x, w, stride, padding, impl=impl))),
      argnums=(0, 1))(x, w)
  for got, ref in zip(grads(impl), grads('xla')):
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)


def test_conv_transpose2d_gradients_match_xla():
  x = jnp.asarray(RNG.standard_normal((2, 5, 6, 7)), jnp.float32)
  w = jnp.asarray(RNG.standard_normal((4, 4, 7, 3)), jnp.float32)
  grads = lambda impl: jax.grad(
      lambda x, w: jnp.sum(jnp.sin(conv.conv_transpose2d(x, w, impl=impl))),
      argnums=(0, 1))(x, w)
  for got, ref in zip(grads('cols'), grads('xla')):
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('impl', ['xla', 'cols'])
def test_conv_transpose2d_matches_torch(impl):
  x = RNG.standard_normal((2, 3, 5, 6, 7)).astype(np.float32)  # two batch axes
  w = RNG.standard_normal((7, 4, 4, 4)).astype(np.float32)  # torch [in, out, kh, kw]
  ref = torch.nn.functional.conv_transpose2d(_nchw(x.reshape(6, 5, 6, 7)), torch.tensor(w),
                                             stride=2, padding=1)
  got = conv.conv_transpose2d(jnp.asarray(x), jnp.asarray(np.transpose(w, (2, 3, 0, 1))),
                              impl=impl)
  assert got.shape == (2, 3, 10, 12, 4)
  np.testing.assert_allclose(np.asarray(got).reshape(6, 10, 12, 4), _nhwc(ref),
                             rtol=1e-5, atol=1e-5)


def test_conv_transpose2d_rejects_input_side_patches():
  with pytest.raises(ValueError, match="impl='cols'"):
    conv.conv_transpose2d(jnp.zeros((1, 4, 4, 3)), jnp.zeros((4, 4, 3, 2)), impl='im2col')


def test_grouped_batchnorm_matches_sequential_torch_calls():
  """Train mode equals calling torch's BatchNorm once per group, in order."""
  x = RNG.standard_normal((4, 3, 5, 5, 6)).astype(np.float32) * 2 + 1
  order = [0, 1, 1, 2]
  bn = GroupedBatchNorm(6)
  scale = RNG.uniform(0.5, 1.5, 6).astype(np.float32)
  bias = RNG.standard_normal(6).astype(np.float32)
  mean0 = RNG.standard_normal(6).astype(np.float32)
  var0 = RNG.uniform(0.5, 1.5, 6).astype(np.float32)
  bn.scale[...], bn.bias[...] = jnp.asarray(scale), jnp.asarray(bias)
  bn.mean[...], bn.var[...] = jnp.asarray(mean0), jnp.asarray(var0)
  ref = torch.nn.BatchNorm2d(6)
  with torch.no_grad():
    ref.weight.copy_(torch.tensor(scale))
    ref.bias.copy_(torch.tensor(bias))
    ref.running_mean.copy_(torch.tensor(mean0))
    ref.running_var.copy_(torch.tensor(var0))
  ref.train()
  outputs = {g: _nhwc(ref(_nchw(x[:, g]))) for g in order}

  got = bn(jnp.asarray(x), train=True, update_order=order)
  for g in range(3):
    np.testing.assert_allclose(got[:, g], outputs[g], rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(bn.mean[...], ref.running_mean.numpy(), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(bn.var[...], ref.running_var.numpy(), rtol=1e-5, atol=1e-6)

  ref.eval()
  got_eval = bn(jnp.asarray(x), train=False)
  np.testing.assert_allclose(got_eval[:, 1], _nhwc(ref(_nchw(x[:, 1]))), rtol=1e-5, atol=1e-5)


def test_circular_conv_is_wraparound_cross_correlation():
  x = RNG.standard_normal((2, 6, 5, 3)).astype(np.float32)
  k_h = RNG.standard_normal((6, 3)).astype(np.float32)
  k_w = RNG.standard_normal((5, 3)).astype(np.float32)
  b = RNG.standard_normal(3).astype(np.float32)
  ref_h = sum(k_h[t] * np.roll(x, -t, axis=1) for t in range(6)) + b
  ref_w = sum(k_w[t] * np.roll(x, -t, axis=2) for t in range(5)) + b
  np.testing.assert_allclose(circular_conv(x, k_h, b, 'h'), ref_h, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(circular_conv(x, k_w, b, 'w'), ref_w, rtol=1e-5, atol=1e-5)
  with pytest.raises(ValueError, match='axis'):
    circular_conv(x, k_h, b, 'x')


def test_correlation_matches_loops():
  a = RNG.standard_normal((2, 6, 7, 5)).astype(np.float32)
  b = RNG.standard_normal((2, 6, 7, 5)).astype(np.float32)
  steps = range(-4, 5, 2)
  ref = np.zeros((2, 6, 7, 25), np.float32)
  for i, dy in enumerate(steps):
    for j, dx in enumerate(steps):
      for y in range(6):
        for x in range(7):
          if 0 <= y + dy < 6 and 0 <= x + dx < 7:
            ref[:, y, x, i * 5 + j] = (a[:, y, x] * b[:, y + dy, x + dx]).mean(-1)
  got = correlation(jnp.asarray(a), jnp.asarray(b), max_displacement=4, stride=2)
  np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
  # Only the displacements that land inside the map for some position are
  # kept (|d| <= 5 rows, <= 6 columns): every channel left out is all zero.
  keep = reachable_displacements(6, 7, max_displacement=4, stride=2)
  assert len(keep) == 25 and np.all(np.any(ref[..., keep] != 0, axis=(0, 1, 2)))
  keep = reachable_displacements(16, 16)
  assert len(keep) == 15 * 15
  a16 = jnp.asarray(RNG.standard_normal((1, 16, 16, 3)), jnp.float32)
  full = correlation(a16, a16)
  np.testing.assert_array_equal(np.delete(np.asarray(full), keep, axis=-1), 0.0)
  np.testing.assert_array_equal(correlation(a16, a16, channels=keep), full[..., keep])


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


def test_space_time_conv_matches_flax_conv3d():
  layer = nnx.Conv(16, 5, (2, 2, 5), strides=(2, 2, 1), padding='VALID', rngs=nnx.Rngs(0))
  x = jnp.asarray(RNG.standard_normal((2, 16, 16, 14, 16)), jnp.float32)
  got = space_time_conv(x, layer.kernel[...], layer.bias[...])
  np.testing.assert_allclose(got, layer(x), rtol=1e-5, atol=1e-5)


