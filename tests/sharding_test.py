"""The sharded train step on 8 fake CPU devices equals the 1-device step."""

import jax
import numpy as np
import pytest

from configs import test as test_config
from mol_jax import sharding, train

BATCH = 8


def _batch():
  rng = np.random.default_rng(0)
  return {'video': rng.standard_normal((BATCH, 8, 128, 128, 1)).astype(np.float32),
          'flow': rng.standard_normal((BATCH, 7, 128, 128, 2)).astype(np.float32),
          'landmarks': rng.uniform(20, 100, (BATCH, 7, 68, 2)).astype(np.float32),
          'label': rng.integers(0, 3, BATCH).astype(np.int32),
          'mask': np.ones(BATCH, np.float32)}


def _one_step(num_devices, param_sharding):
  config = test_config.get_config()
  config.batch_size = BATCH
  config.mesh.num_devices = num_devices
  config.mesh.param_sharding = param_sharding
  # With eps and lr large and no decay, AdamW's first update is the gradient
  # itself (lr * g / (|g| + eps) ~ g), so the new parameters compare the
  # gradients; with the usual eps every update is ~ +-lr, whatever the
  # gradient.
  config.optimizer.eps = 1e3
  config.optimizer.learning_rate = 1e3
  config.optimizer.weight_decay = 0.0
  mesh = sharding.create_mesh(num_devices)
  tx = train.create_optimizer(config)
  graphdef, state = train.create_train_state(config, 3, seed=0, tx=tx)
  steps = train.Steps(config, graphdef, tx, state, mesh)
  state = steps.place(state)
  batch = sharding.global_batch(_batch(), mesh)
  assert batch['video'].sharding.num_devices == num_devices
  state, metrics = steps.train(state, batch)
  return jax.device_get(state), jax.device_get(metrics), steps


def test_fsdp_shards_large_parameters_only():
  assert jax.device_count() == 8, 'conftest fakes 8 CPU devices'
  mesh = sharding.create_mesh(8)
  abstract = {'big': jax.ShapeDtypeStruct((1024, 1024, 3, 3), np.float32),
              'odd': jax.ShapeDtypeStruct((1026, 999), np.float32),
              'small': jax.ShapeDtypeStruct((64,), np.float32)}
  specs = sharding.state_shardings(abstract, mesh, 'fsdp')
  assert specs['big'].spec == jax.sharding.PartitionSpec('data', None, None, None)
  assert specs['odd'].spec == jax.sharding.PartitionSpec()
  assert specs['small'].spec == jax.sharding.PartitionSpec()
  with pytest.raises(ValueError, match='param_sharding'):
    sharding.state_shardings(abstract, mesh, 'tensor')
  with pytest.raises(ValueError, match='16'):
    sharding.create_mesh(16)


@pytest.mark.slow
def test_eight_devices_match_one_device():
  state1, metrics1, _ = _one_step(1, 'replicated')
  state8, metrics8, steps8 = _one_step(8, 'fsdp')
  big = steps8.state_sharding.params['flownet']['conv6_1']['conv']['kernel']
  assert big.spec[0] == 'data' or 'data' in big.spec, 'the large kernel is sharded'
  for key in ('loss', 'loss/mer', 'loss/flow', 'loss/landmarks', 'grad_norm'):
    np.testing.assert_allclose(metrics8[key], metrics1[key], rtol=1e-4, err_msg=key)
  flat1 = jax.tree.leaves(state1.params)
  flat8 = jax.tree.leaves(state8.params)
  # Sums split over 8 devices round differently: elements far smaller than
  # their tensor's largest get an absolute tolerance relative to that one
  # (and at least 1e-6, for biases whose gradient is zero but for rounding).
  for a, b in zip(flat1, flat8):
    np.testing.assert_allclose(b, a, rtol=1e-4, atol=max(1e-6, 1e-5 * float(np.abs(a).max())))
  for a, b in zip(jax.tree.leaves(state1.batch_stats), jax.tree.leaves(state8.batch_stats)):
    np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)
