"""The shared layers (`mol_jax.model.layers`): train-mode GroupedBatchNorm
against sequential calls of PyTorch's BatchNorm."""

import numpy as np
import torch
import jax.numpy as jnp

from mol_jax.model.layers import GroupedBatchNorm

RNG = np.random.default_rng(0)


def _nchw(x):
  return torch.tensor(np.ascontiguousarray(np.moveaxis(x, -1, 1)))


def _nhwc(t):
  return np.moveaxis(t.detach().numpy(), 1, -1)


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
