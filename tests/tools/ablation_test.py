"""The ablation tool (`mol_jax.tools.ablation`): its variants' configs, its
flags, a reproducible and resumable table, and region maps of the fold
models it trained."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from configs import test as test_config
from mol_jax import explain
from mol_jax.tools import ablation
from tests import REPO


def test_the_tool_and_main_import_in_one_process_and_the_command_keeps_its_flags(tmp_path):
  """absl flags are global to a process: the tool defines its own (`workdir`
  among them, as `mol_jax.main` does) only when run as a command."""
  code = ('from absl import flags; import mol_jax.main; from mol_jax.tools import ablation; '
          "assert 'seeds' not in flags.FLAGS and 'workdir' in flags.FLAGS")
  subprocess.run([sys.executable, '-c', code], cwd=REPO, check=True, timeout=300)
  command = subprocess.run([sys.executable, '-m', 'mol_jax.tools.ablation',
                            f'--workdir={tmp_path}', '--seeds=1', '--variants=mol'],
                           cwd=REPO, capture_output=True, text=True, timeout=300)
  assert command.returncode != 0
  assert '--config and --workdir are required' in command.stderr
  assert not os.listdir(tmp_path)


def test_variant_configs():
  base = test_config.get_config()
  assert ablation.variant_config(base, 'no_fcc', 0).model.use_fcc is False
  assert ablation.variant_config(base, 'no_ccc', 0).model.use_ccc is False
  mer = ablation.variant_config(base, 'mer_only', 2)
  assert (mer.loss.of_weight, mer.loss.ldm_weight) == (0.0, 0.0)
  assert mer.seed == base.seed + 2 * ablation.SEED_STRIDE
  assert ablation.variant_config(base, 'no_flow', 0).eval_with_flow is False
  with pytest.raises(ValueError, match='unknown ablation variant'):
    ablation.variant_config(base, 'no_heads', 0)


@pytest.fixture(scope='module')
def ablated(tmp_path_factory):
  """Two variants x one seed on one fold of synthetic_me/small, and one of
  them again in a second workdir with the same seed."""
  config = test_config.get_config()
  config.folds = 'sy01'
  config.data_dir = str(tmp_path_factory.mktemp('tfds'))
  first, second = (str(tmp_path_factory.mktemp(n)) for n in ('first', 'second'))
  tables = [ablation.run_ablation(config, first, ['mol', 'no_ccc'], 1, ('mol',), 2),
            ablation.run_ablation(config, second, ['no_ccc'], 1)]
  return config, first, second, tables


def test_ablation_table_is_reproducible(ablated):
  _, first, _, (a, b) = ablated
  assert set(a) == {'mol', 'no_ccc'} and set(b) == {'no_ccc'}
  for key in ('uf1', 'uar', 'landmark_nme_vs_truth'):
    assert a['no_ccc'][key] == b['no_ccc'][key], key
  text = open(os.path.join(first, 'ablation.md')).read()
  assert '| mol |' in text and '| no_ccc |' in text
  # Region maps of the fold models of the variants asked for.
  regions = a['mol']['regions']
  assert regions['mol']['num_clips'] >= 2 and 'regions' not in a['no_ccc']
  assert 0 < regions['mol']['moving_region_area_fraction'] < 1
  assert 'MOL pointing game' in text


def test_killed_ablation_resumes_where_it_stopped(ablated):
  config, first, _, (table, _) = ablated
  run = ablation.run_dir(first, 'no_ccc', 0)
  # Killed during the last fold's evaluation: its run record, the fold's
  # result and the summary were never written; its checkpoints were.
  subjects = sorted(os.listdir(os.path.join(run, 'folds')))
  for path in (os.path.join(run, 'run.json'), os.path.join(run, 'results.json'),
               os.path.join(run, 'folds', subjects[-1], 'result.json')):
    os.remove(path)
  mol_record = os.path.join(ablation.run_dir(first, 'mol', 0), 'run.json')
  before = os.path.getmtime(mol_record)
  resumed = ablation.run_ablation(config, first, ['mol', 'no_ccc'], 1)
  assert os.path.getmtime(mol_record) == before  # the finished run is not retrained
  assert resumed['no_ccc']['uf1'] == table['no_ccc']['uf1']
  assert resumed['no_ccc']['landmark_nme_vs_truth'] == table['no_ccc']['landmark_nme_vs_truth']


def test_explain_cli_on_held_out_clips_of_a_built_set(ablated, tmp_path):
  config, first, _, _ = ablated
  run = ablation.run_dir(first, 'mol', 0)
  subject = sorted(os.listdir(os.path.join(run, 'folds')))[0]
  out = tmp_path / 'explain'
  code = explain.main(['--checkpoint', os.path.join(run, 'folds', subject, 'model'),
                       '--dataset', config.dataset, '--data_dir', config.data_dir,
                       '--subject', subject, '--out', str(out), '--steps', '4'])
  assert code == 0
  scores = json.loads((out / 'region_scores.json').read_text())
  for name in ('mol', 'frame_difference'):
    assert scores[name]['num_clips'] >= 1
    assert 0 <= scores[name]['mass_in_moving_region'] <= 1
    assert 0 < scores[name]['moving_region_area_fraction'] < 1
  result = json.loads((out / 'explain.json').read_text())
  for clip in result['clips']:
    assert (out / clip['map_png']).stat().st_size > 1000
  shutil.rmtree(out)
