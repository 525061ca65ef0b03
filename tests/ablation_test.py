"""The ablation switches, the ablation tool and region maps of a trained model."""

import json
import os
import shutil
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from configs import test as test_config
from mol_jax import checkpointing, convert, explain
from mol_jax.model import mol as models
from mol_jax.tools import ablation
from random_weights import random_model

import golden


def _parameters(model):
  return models.count_parameters(nnx.state(model, nnx.Param))


def test_variants_build_without_their_blocks():
  full = models.abstract_model(3)
  no_fcc = models.abstract_model(3, use_fcc=False)
  no_ccc = models.abstract_model(3, use_ccc=False)
  fcc = _parameters(full.fcc_1) + _parameters(full.fcc_2)
  ccc = _parameters(full.ccc_1) + _parameters(full.ccc_2)
  assert _parameters(no_fcc) == _parameters(full) - fcc
  assert _parameters(no_ccc) == _parameters(full) - ccc
  assert not hasattr(no_fcc, 'fcc_1') and not hasattr(no_ccc, 'ccc_2')


def test_without_ccc_equals_ccc_that_adds_nothing():
  """use_ccc=False is the full network whose CCC update is zero (ReLU of a
  negative constant), every other weight equal."""
  full = random_model(seed=5)
  for block in (full.ccc_1, full.ccc_2):
    block.w1[...] = jnp.zeros_like(block.w1[...])
    block.w2[...] = jnp.zeros_like(block.w2[...])
    block.b1[...] = -jnp.ones_like(block.b1[...])
  no_ccc = models.abstract_model(3, use_ccc=False)
  weights = nnx.state(full, (nnx.Param, nnx.BatchStat)).to_pure_dict()
  state = nnx.state(no_ccc, (nnx.Param, nnx.BatchStat))
  state.replace_by_pure_dict({k: v for k, v in weights.items() if not k.startswith('ccc_')})
  nnx.update(no_ccc, state)
  video = jnp.asarray(np.random.default_rng(0).normal(size=(1, 8, 128, 128, 1)), jnp.float32)
  a, b = full(video, train=False), no_ccc(video, train=False)
  for key in ('logits', 'landmarks', 'flow'):
    np.testing.assert_allclose(np.asarray(a[key]), np.asarray(b[key]), rtol=1e-5, atol=1e-5)


def test_without_fcc_passes_the_conv_features_through():
  """use_fcc=False feeds the conv-stack features to the CCC unchanged."""
  model = random_model(seed=6, use_fcc=False)
  video = jnp.asarray(np.random.default_rng(1).normal(size=(1, 8, 128, 128, 1)), jnp.float32)
  model(video, train=False)
  inter = nnx.state(model, nnx.Intermediate).to_pure_dict()
  assert 'fcc_1_features' not in inter
  features = np.asarray(inter['conv_stack_features'][0])
  update = np.asarray(inter['ccc_1']['update'][0])
  flat = features[:, :7].reshape(1, 7, 256, 128)
  neighbours = np.asarray(inter['ccc_1']['neighbors'][0])
  from mol_jax.model import ccc  # pylint: disable=import-outside-toplevel
  np.testing.assert_array_equal(neighbours, np.asarray(ccc.cosine_knn(jnp.asarray(flat), 4)))
  assert update.shape == features[:, :7].shape


@pytest.mark.parametrize('flags,refused_prefixes', [
    ({'use_fcc': False}, ('FCC_1.', 'FCC_2.')),
    ({'use_ccc': False}, ('CCC_1.', 'CCC_2.')),
    ({'use_fcc': False, 'use_ccc': False}, ('FCC_', 'CCC_')),
])
def test_variants_import_official_weights_where_the_layers_exist(flags, refused_prefixes):
  golden.require()
  sd = golden.official_state_dict()
  refused = {}
  model = convert.import_official(sd, 3, 4, refused=refused, **flags)
  assert refused and all(k.startswith(refused_prefixes) for k in refused)
  assert all('use_' in reason and 'ablation' in reason for reason in refused.values())
  full = convert.import_official(sd, 3, 4)
  # Every layer that remains holds the official weights.
  variant = nnx.to_flat_state(nnx.state(model, (nnx.Param, nnx.BatchStat)))
  reference = dict(nnx.to_flat_state(nnx.state(full, (nnx.Param, nnx.BatchStat))))
  for path, value in variant:
    np.testing.assert_array_equal(np.asarray(value[...]), np.asarray(reference[path][...]))


def test_variant_checkpoint_restores_its_architecture(tmp_path):
  model = random_model(seed=7, use_ccc=False)
  checkpointing.save_model(str(tmp_path / 'm'), model)
  restored = checkpointing.restore_model(str(tmp_path / 'm'))
  assert restored.use_ccc is False and restored.use_fcc is True


def test_the_tool_and_main_import_in_one_process_and_the_command_keeps_its_flags(tmp_path):
  """absl flags are global to a process: the tool defines its own (`workdir`
  among them, as `mol_jax.main` does) only when run as a command."""
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  code = ('from absl import flags; import mol_jax.main; from mol_jax.tools import ablation; '
          "assert 'seeds' not in flags.FLAGS and 'workdir' in flags.FLAGS")
  subprocess.run([sys.executable, '-c', code], cwd=repo, check=True, timeout=300)
  command = subprocess.run([sys.executable, '-m', 'mol_jax.tools.ablation',
                            f'--workdir={tmp_path}', '--seeds=1', '--variants=mol'],
                           cwd=repo, capture_output=True, text=True, timeout=300)
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
