"""`config.init_from`: every fold starts from a checkpoint; 0 steps scores it."""

import json
import os
import re

import jax
import numpy as np
import pytest
from flax import nnx

from mol_jax import checkpointing, train
from random_weights import random_model
from tiny_config import tiny_config as _config


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  return str(tmp_path_factory.mktemp('tfds'))


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
  """A 3-class official-shape model saved as step 3 (as a fold model is)."""
  directory = str(tmp_path_factory.mktemp('ckpt') / 'model')
  checkpointing.save_model(directory, random_model(3, seed=11), step=3)
  return directory


def _assert_same(a, b):
  leaves_a, tree_a = jax.tree.flatten(a)
  leaves_b, tree_b = jax.tree.flatten(b)
  assert tree_a == tree_b
  for x, y in zip(leaves_a, leaves_b):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def _start_variables(config, start):
  """The variables of the model a fold's train state starts with."""
  tx = train.create_optimizer(config)
  graphdef, state = train.create_train_state(config, 3, 5, tx, start=start)
  assert int(state.step) == 0
  return checkpointing.model_variables(nnx.merge(graphdef, state.params, state.batch_stats))


def test_init_from_restores_the_checkpoint_at_step_0(checkpoint):
  config = _config('unused', init_from=checkpoint)
  start = train.load_init_from(config, 3)
  assert start.source() == {'path': checkpoint, 'step': 3}
  saved = checkpointing.model_variables(checkpointing.restore_model(checkpoint))
  _assert_same(_start_variables(config, start), saved)


def test_official_checkpoint_starts_a_refinement_model(checkpoint):
  """Without the refinement's layers: every official layer loaded, the
  refinement at its initialisation (the official flow, exactly)."""
  config = _config('unused', init_from=checkpoint, **{'model.flow_refinement': True})
  start = train.load_init_from(config, 3)
  started = _start_variables(config, start)
  saved = checkpointing.model_variables(checkpointing.restore_model(checkpoint))
  refinement = started.pop('flow_refine')
  _assert_same(started, saved)
  assert np.abs(np.asarray(refinement['predict']['kernel'])).max() == 0


def test_zero_steps_scores_the_checkpoint_on_every_fold(data_dir, checkpoint, tmp_path):
  workdir = str(tmp_path / 'run')
  config = _config(data_dir, init_from=checkpoint, num_train_steps=0, eval_with_flow=True)
  state, summary = train.train_and_evaluate(config, workdir)
  assert int(state.step) == 0
  assert summary['num_folds'] == 2 and summary['num_train_steps'] == 0
  source = {'path': checkpoint, 'step': 3}
  with open(os.path.join(workdir, 'results.json')) as f:
    assert json.load(f)['init_from'] == source
  saved = checkpointing.model_variables(checkpointing.restore_model(checkpoint))
  for subject, fold in summary['folds'].items():
    assert fold['num_examples'] > 0
    with open(os.path.join(workdir, 'folds', subject, 'result.json')) as f:
      result = json.load(f)
    assert result['init_from'] == source and result['fixed']['step'] == 0
    assert result['fixed']['flow_epe_vs_targets'] > 0
    model_dir = os.path.join(workdir, 'folds', subject, 'model')
    # The fold's model is the checkpoint, untouched, written as step 0.
    assert checkpointing.checkpoint_step(model_dir) == 0
    assert checkpointing.load_metadata(model_dir)['init_from'] == source
    _assert_same(checkpointing.model_variables(checkpointing.restore_model(model_dir)), saved)


def test_zero_steps_without_init_from_is_a_config_error(tmp_path):
  config = _config(str(tmp_path), num_train_steps=0)
  with pytest.raises(train.ConfigError, match='num_train_steps=0.*init_from'):
    train.train_and_evaluate(config, str(tmp_path / 'run'))
  assert not (tmp_path / 'run').exists()


@pytest.mark.parametrize('kind', ['classes', 'refinement', 'missing'])
def test_mismatched_checkpoint_is_one_line_before_writing(data_dir, tmp_path, kind):
  source = str(tmp_path / 'source')
  if kind == 'classes':
    checkpointing.save_model(source, random_model(5, seed=1))
    expected = r'5 classes, the model \(config.dataset\) 3'
  elif kind == 'refinement':
    checkpointing.save_model(source, random_model(3, seed=1, flow_refinement=True))
    expected = r'flow_refine.*config.model.flow_refinement=True'
  else:
    expected = 'checkpoint directory not found'
  config = _config(data_dir, init_from=source)
  with pytest.raises(train.ConfigError) as error:
    train.train_and_evaluate(config, str(tmp_path / 'run'))
  message = str(error.value)
  assert '\n' not in message
  assert message.startswith(f'config.init_from={source}')
  assert re.search(expected, message), message
  assert not (tmp_path / 'run').exists()


def test_refinement_trains_from_an_official_checkpoint(data_dir, checkpoint, tmp_path):
  """A training run with the refinement, started from weights without it:
  its fold model records and rebuilds the refinement, trained."""
  workdir = str(tmp_path / 'run')
  config = _config(data_dir, init_from=checkpoint, num_train_steps=1,
                   **{'model.flow_refinement': True})
  _, summary = train.train_and_evaluate(config, workdir)
  assert summary['init_from'] == {'path': checkpoint, 'step': 3}
  subject = sorted(summary['folds'])[0]
  model = checkpointing.restore_model(os.path.join(workdir, 'folds', subject, 'model'))
  assert model.flow_refinement
  assert np.abs(np.asarray(model.flow_refine.predict.kernel[...])).max() > 0


def test_a_pretraining_stage_starts_every_fold(data_dir, tmp_path):
  """`config.pretrain` trains first, into WORKDIR/pretrain, against the exact
  motion; its fold model starts the run; a rerun resumes, not repeats, it."""
  workdir = str(tmp_path / 'run')
  stage = _config(data_dir, num_train_steps=1, folds='sy01',
                  **{'loss.flow_target': 'true_flow', 'model.flow_refinement': True})
  config = _config(data_dir, num_train_steps=1, folds='sy02', pretrain=stage,
                   **{'model.flow_refinement': True})
  _, summary = train.train_and_evaluate(config, workdir)
  model_dir = os.path.join(workdir, 'pretrain', 'folds', 'sy01', 'model')
  assert summary['init_from'] == {'path': model_dir, 'step': 1}
  stage_result = os.path.join(workdir, 'pretrain', 'folds', 'sy01', 'result.json')
  finished = os.path.getmtime(stage_result)
  _, again = train.train_and_evaluate(config, workdir)
  assert os.path.getmtime(stage_result) == finished
  assert again['init_from'] == summary['init_from']


def test_a_pretraining_stage_names_one_fold(data_dir, tmp_path):
  stage = _config(data_dir, num_train_steps=1, folds='')
  config = _config(data_dir, pretrain=stage)
  with pytest.raises(train.ConfigError, match='config.pretrain.folds'):
    train.train_and_evaluate(config, str(tmp_path / 'run'))
  assert not (tmp_path / 'run').exists()
