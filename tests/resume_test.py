"""A real run killed after its first checkpoint resumes to the same result."""

import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from mol_jax import checkpointing

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _env(cache_dir):
  env = dict(os.environ)
  # Later runs reuse the first run's compiled step; in the suite the session's
  # cache (conftest.py, with its device flags) may already hold it.
  env.setdefault('JAX_COMPILATION_CACHE_DIR', cache_dir)
  env.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '1')
  return env


def _command(workdir, data_dir):
  return [sys.executable, '-m', 'mol_jax.main', '--config=configs/test.py',
          f'--workdir={workdir}', f'--config.data_dir={data_dir}',
          '--config.num_train_steps=3', '--config.folds=sy01']


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_result(tmp_path):
  data_dir, cache = str(tmp_path / 'tfds'), str(tmp_path / 'cache')
  straight, resumed = str(tmp_path / 'straight'), str(tmp_path / 'resumed')
  subprocess.run(_command(straight, data_dir), cwd=REPO, env=_env(cache), check=True,
                 timeout=1500)

  proc = subprocess.Popen(_command(resumed, data_dir), cwd=REPO, env=_env(cache),
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  with open(os.path.join(straight, 'results.json')) as f:
    first_subject = sorted(json.load(f)['folds'])[0]
  checkpoint = os.path.join(resumed, 'folds', first_subject, 'checkpoints', '1')
  deadline = time.time() + 900
  while not os.path.isdir(checkpoint) and proc.poll() is None and time.time() < deadline:
    time.sleep(0.2)
  assert proc.poll() is None, 'the run ended before it could be killed'
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert not os.path.exists(os.path.join(resumed, 'results.json'))

  subprocess.run(_command(resumed, data_dir), cwd=REPO, env=_env(cache), check=True,
                 timeout=1500)
  with open(os.path.join(straight, 'results.json')) as f:
    expected = json.load(f)
  with open(os.path.join(resumed, 'results.json')) as f:
    got = json.load(f)
  assert got['folds'] == expected['folds']
  assert got['pooled'] == expected['pooled']
  for subject in expected['folds']:
    a = checkpointing.model_variables(
        checkpointing.load_model(os.path.join(straight, 'folds', subject, 'model')))
    b = checkpointing.model_variables(
        checkpointing.load_model(os.path.join(resumed, 'folds', subject, 'model')))
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
      np.testing.assert_allclose(np.asarray(y), np.asarray(x), rtol=1e-6, atol=1e-7)
