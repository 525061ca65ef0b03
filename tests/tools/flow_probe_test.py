"""The flow probe (`mol_jax.tools.flow_probe`): the folds' evaluations it reads,
a short run with every flow lever of `config.loss` on, and its command's errors."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from configs import default
from configs import test as test_config
from mol_jax import train
from mol_jax.tools import flow_probe
from tests import REPO


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  return str(tmp_path_factory.mktemp('tfds'))


def _metrics_rows(fold):
  rows = [
      {'step': 5, 'prefix': f'{fold}/train', 'loss': 1.0, 'steps_per_second': 1.0},
      {'step': 10, 'prefix': f'{fold}/train', 'loss': 1.0, 'steps_per_second': 0.5},
      {'step': 10, 'prefix': f'{fold}/test', 'uf1': 0.5, 'accuracy': 0.6,
       'flow_epe_vs_truth': 0.2, 'zero_flow_epe_vs_truth': 0.25, 'tvl1_epe_vs_truth': 0.1},
      {'step': 10, 'prefix': 'other/test', 'uf1': 0.0, 'accuracy': 0.0,
       'flow_epe_vs_truth': 9.0, 'zero_flow_epe_vs_truth': 1.0, 'tvl1_epe_vs_truth': 1.0},
      # A resumed run logs step 15 twice; the later rows win.
      {'step': 15, 'prefix': f'{fold}/train', 'loss': 1.0, 'steps_per_second': 5.0},
      {'step': 15, 'prefix': f'{fold}/test', 'uf1': 0.1, 'accuracy': 0.1,
       'flow_epe_vs_truth': 9.0, 'zero_flow_epe_vs_truth': 1.0, 'tvl1_epe_vs_truth': 1.0},
      {'step': 15, 'prefix': f'{fold}/train', 'loss': 1.0, 'steps_per_second': 1.0},
      {'step': 15, 'prefix': f'{fold}/test', 'uf1': 0.75, 'accuracy': 0.8,
       'flow_epe_vs_truth': 0.25, 'zero_flow_epe_vs_truth': 0.25, 'tvl1_epe_vs_truth': 0.1},
  ]
  return ''.join(json.dumps(r) + '\n' for r in rows)


def test_probe_reads_the_folds_evaluations(tmp_path):
  path = tmp_path / 'metrics.jsonl'
  path.write_text(_metrics_rows('sy01'))
  evaluations = flow_probe.read_evaluations(str(path), 'sy01')
  assert [e['step'] for e in evaluations] == [10, 15]
  first, last = evaluations
  assert first['reference'] == 'truth'
  np.testing.assert_allclose([first['epe'], first['zero_epe'], first['ratio'],
                              first['tvl1_ratio'], first['uf1']], [0.2, 0.25, 0.8, 0.4, 0.5])
  np.testing.assert_allclose(first['wall_s'], 5 / 1.0 + 5 / 0.5)
  np.testing.assert_allclose([last['ratio'], last['uf1'], last['wall_s']], [1.0, 0.75, 20.0])
  probe = {'dataset': 'synthetic_me/demo', 'fold': 'sy01', 'evaluations': evaluations,
           'levers': {name: flow_probe._get(default.get_config(), name)  # pylint: disable=protected-access
                      for name in flow_probe.LEVERS}}
  table = flow_probe.markdown(probe)
  assert '| 10 | 0.2000 | 0.2500 | 0.8000 | 0.4000 | 0.5000 | 15 |' in table
  assert "| sy01 | 'mse' | 1 | '' | 'flow' | False | 10 | 0.0001 | '' | False | 7 | 0 | 1000 |" in (
      flow_probe.summary_row(probe))
  assert '10: 0.800, 15: 1.000' in flow_probe.summary_row(probe)


def test_probe_without_the_truth_falls_back_to_the_targets(tmp_path):
  path = tmp_path / 'metrics.jsonl'
  path.write_text(json.dumps({'step': 3, 'prefix': 's1/test', 'uf1': 0.5, 'accuracy': 0.5,
                              'flow_epe_vs_targets': 0.3, 'zero_flow_epe_vs_targets': 0.6})
                  + '\n' + json.dumps({'step': 4, 'prefix': 's1/test', 'uf1': 0.5,
                                       'accuracy': 0.5}) + '\n')
  (only,) = flow_probe.read_evaluations(str(path), 's1')
  assert (only['reference'], only['ratio'], only['tvl1_ratio'], only['wall_s']) == (
      'targets', 0.5, None, None)


def test_probe_end_to_end_with_every_lever_on(data_dir, tmp_path):
  """Two steps of configs/test.py trained against the exact motion, with EPE
  in 1/5 px, the pyramid and flips; the probe reads both evaluations; a
  rerun reads them back; another config in the same workdir is refused."""
  config = test_config.get_config()
  config.data_dir = data_dir
  config.augment.flip = True
  config.loss.update(flow_loss='epe', flow_scale=5.0, flow_target='true_flow',
                     flow_pyramid_weights='0.005,0.01,0.02,0.08,0.32,0.32')
  workdir = str(tmp_path / 'probe')
  probe = flow_probe.run_probe(config, workdir, eval_every=1)
  assert [e['step'] for e in probe['evaluations']] == [1, 2]
  for e in probe['evaluations']:
    assert e['reference'] == 'truth'
    assert 0 < e['epe'] and 0 < e['zero_epe'] and 0 < e['tvl1_ratio'] < 1
  assert probe['levers']['loss.flow_target'] == 'true_flow'
  with open(os.path.join(workdir, 'probe.json')) as f:
    assert json.load(f)['evaluations'] == probe['evaluations']
  assert os.path.isfile(os.path.join(workdir, 'probe.md'))
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    rows = [json.loads(line) for line in f]
  losses_logged = [r['loss/flow'] for r in rows if r['prefix'].endswith('/train')]
  assert losses_logged and all(np.isfinite(losses_logged))
  assert flow_probe.run_probe(config, workdir, eval_every=1)['evaluations'] == probe['evaluations']
  config.loss.flow_scale = 1.0
  with pytest.raises(train.ConfigError, match=r'another config.*loss\.flow_scale'):
    flow_probe.run_probe(config, workdir, eval_every=1)


def test_probe_command_bad_lever_is_one_line_and_exit_2(tmp_path):
  workdir = tmp_path / 'probe'
  result = subprocess.run(
      [sys.executable, '-m', 'mol_jax.tools.flow_probe', '--config=configs/test.py',
       f'--workdir={workdir}', '--config.loss.flow_loss=huber',
       f'--config.data_dir={tmp_path / "tfds"}'],
      cwd=REPO, capture_output=True, text=True, check=False)
  assert result.returncode == 2, result.stderr
  assert result.stderr.strip().splitlines()[-1].startswith('error: config.loss.flow_loss')
  assert not workdir.exists()
