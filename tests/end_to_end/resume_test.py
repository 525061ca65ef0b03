"""A real run killed after its first checkpoint resumes to the same result."""

import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from mol_jax import checkpointing
from tests import REPO


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


@pytest.fixture(scope='module')
def straight(tmp_path_factory):
  """(workdir of an uninterrupted run, its data_dir, the compilation cache)."""
  root = tmp_path_factory.mktemp('resume')
  data_dir, cache = str(root / 'tfds'), str(root / 'cache')
  workdir = str(root / 'straight')
  subprocess.run(_command(workdir, data_dir), cwd=REPO, env=_env(cache), check=True,
                 timeout=1500)
  return workdir, data_dir, cache


def _assert_same_results(straight, resumed):
  with open(os.path.join(straight, 'results.json')) as f:
    expected = json.load(f)
  with open(os.path.join(resumed, 'results.json')) as f:
    got = json.load(f)
  assert got['folds'] == expected['folds']
  assert got['pooled'] == expected['pooled']
  # The steps replayed after the last checkpoint are logged once.
  with open(os.path.join(resumed, 'metrics.jsonl')) as f:
    rows = [(r['prefix'], r['step']) for r in map(json.loads, f)]
  assert len(rows) == len(set(rows)), rows


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_result(straight, tmp_path):
  straight, data_dir, cache = straight
  resumed = str(tmp_path / 'resumed')

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
  _assert_same_results(straight, resumed)
  with open(os.path.join(straight, 'results.json')) as f:
    expected = json.load(f)
  for subject in expected['folds']:
    a = checkpointing.model_variables(
        checkpointing.restore_model(os.path.join(straight, 'folds', subject, 'model')))
    b = checkpointing.model_variables(
        checkpointing.restore_model(os.path.join(resumed, 'folds', subject, 'model')))
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
      np.testing.assert_allclose(np.asarray(y), np.asarray(x), rtol=1e-6, atol=1e-7)


@pytest.mark.slow
def test_ctrl_c_is_one_line_exit_130_and_the_same_command_resumes(straight, tmp_path):
  """Ctrl-C as a terminal sends it (SIGINT to the whole process group) once
  the first checkpoint exists: one line that says the same command resumes,
  which it does, to the same result, with the resume line visible and none
  of the checkpoint library's INFO lines."""
  straight, data_dir, cache = straight
  resumed = str(tmp_path / 'resumed')
  # A file, not a pipe: nothing is read until the run ends.
  log = open(tmp_path / 'stderr.txt', 'w+')  # pylint: disable=consider-using-with
  proc = subprocess.Popen(_command(resumed, data_dir), cwd=REPO, env=_env(cache),
                          stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
  checkpoint = os.path.join(resumed, 'folds', 'sy01', 'checkpoints', '1')
  deadline = time.time() + 900
  while not os.path.isdir(checkpoint) and proc.poll() is None and time.time() < deadline:
    time.sleep(0.2)
  assert proc.poll() is None, 'the run ended before it could be interrupted'
  os.killpg(proc.pid, signal.SIGINT)
  proc.wait(timeout=600)
  log.seek(0)
  stderr = log.read()
  log.close()
  assert proc.returncode == 130, stderr[-3000:]
  assert 'Traceback' not in stderr, stderr[-3000:]
  last = stderr.strip().splitlines()[-1]
  assert last.startswith('error: interrupted: ') and (
      f'run the same command again to resume (finished folds are kept, a fold resumes from '
      f'its last checkpoint in {resumed})') in last, last
  assert not os.path.exists(os.path.join(resumed, 'results.json'))

  rerun = subprocess.run(_command(resumed, data_dir), cwd=REPO, env=_env(cache),
                         capture_output=True, text=True, timeout=1500)
  assert rerun.returncode == 0, rerun.stderr[-3000:]
  assert 'fold sy01: resumed at step' in rerun.stderr
  # absl's INFO lines name their source file; none may be one of Orbax's
  # (its warnings stay, e.g. an unfinished save that it removes).
  orbax_files = {p.name for p in pathlib.Path(ocp.__file__).parent.rglob('*.py')}
  info_sources = {m.group(1) for m in re.finditer(r'^I\d{4} [\d:.]+ +\d+ ([\w.]+):\d+\]',
                                                  rerun.stderr, re.MULTILINE)}
  assert 'train.py' in info_sources, info_sources  # The pattern reads the lines.
  assert not info_sources & orbax_files, (info_sources, rerun.stderr[-3000:])
  _assert_same_results(straight, resumed)
