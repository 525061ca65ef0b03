"""Two processes on 127.0.0.1 (2 CPU devices each) train like one process."""

import json
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from mol_jax import checkpointing
from tests import REPO


def _free_port():
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def _env(devices, cache_dir):
  env = dict(os.environ)
  env['XLA_FLAGS'] = f'--xla_force_host_platform_device_count={devices}'
  env.setdefault('JAX_COMPILATION_CACHE_DIR', cache_dir)
  env.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '1')
  return env


def _command(workdir, data_dir, *extra):
  return [sys.executable, '-m', 'mol_jax.main', '--config=configs/test.py',
          f'--workdir={workdir}', f'--config.data_dir={data_dir}',
          '--config.mesh.num_devices=-1', '--config.batch_size=4',
          '--config.eval_batch_size=4', '--config.num_train_steps=1',
          # One AdamW step then moves by ~ the gradient itself (see
          # tests/sharding_test.py), so parameters compare gradients rather than
          # their signs.
          '--config.optimizer.eps=1000', '--config.optimizer.learning_rate=1000',
          '--config.optimizer.weight_decay=0',
          # One fold: the second would repeat the first's checks at twice the cost.
          # No flow term: it halves the compilation, and sharding_test checks
          # the flow head's step on 8 devices.
          '--config.folds=sy01', '--config.loss.of_weight=0', *extra]


@pytest.mark.slow
def test_two_processes_match_one(tmp_path):
  data_dir, cache = str(tmp_path / 'tfds'), str(tmp_path / 'cache')
  single, multi = str(tmp_path / 'single'), str(tmp_path / 'multi')
  subprocess.run(_command(single, data_dir), cwd=REPO, env=_env(4, cache), check=True,
                 timeout=1800)

  port = _free_port()
  procs = [
      subprocess.Popen(
          _command(multi, data_dir, '--config.distributed.initialize=True',
                   f'--config.distributed.coordinator_address=127.0.0.1:{port}',
                   '--config.distributed.num_processes=2',
                   f'--config.distributed.process_id={i}'),
          cwd=REPO, env=_env(2, cache))
      for i in range(2)
  ]
  try:
    codes = [p.wait(timeout=1800) for p in procs]
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
  assert codes == [0, 0]

  with open(os.path.join(single, 'results.json')) as f:
    expected = json.load(f)
  with open(os.path.join(multi, 'results.json')) as f:
    got = json.load(f)
  assert got['pooled']['confusion'] == expected['pooled']['confusion']
  assert sorted(got['folds']) == sorted(expected['folds'])
  for subject in expected['folds']:
    a = checkpointing.model_variables(
        checkpointing.restore_model(os.path.join(single, 'folds', subject, 'model')))
    b = checkpointing.model_variables(
        checkpointing.restore_model(os.path.join(multi, 'folds', subject, 'model')))
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
      np.testing.assert_allclose(np.asarray(y), np.asarray(x), rtol=1e-4, atol=1e-6)
