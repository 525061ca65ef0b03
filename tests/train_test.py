"""train_and_evaluate end to end on the tiny synthetic config."""

import json
import os

import numpy as np
import pytest

from configs import test as test_config
from mol_jax import checkpointing, train


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  return str(tmp_path_factory.mktemp('tfds'))


def _config(data_dir, **overrides):
  config = test_config.get_config()
  config.data_dir = data_dir
  for key, value in overrides.items():
    node = config
    *parents, leaf = key.split('.')
    for p in parents:
      node = getattr(node, p)
    setattr(node, leaf, value)
  return config


def test_train_and_evaluate_writes_results_and_resumes(data_dir, tmp_path):
  workdir = str(tmp_path / 'run')
  config = _config(data_dir)
  state, summary = train.train_and_evaluate(config, workdir)
  assert int(state.step) == config.num_train_steps
  assert summary['num_folds'] == 2
  pooled = summary['fixed']
  assert pooled['num_examples'] == sum(f['fixed']['num_examples'] for f in summary['folds'])
  assert 0.0 <= pooled['uf1'] <= 1.0
  for name in ('results.json', 'results.md', 'confusion_fixed.png', 'metrics.jsonl'):
    assert os.path.exists(os.path.join(workdir, name)), name
  with open(os.path.join(workdir, 'results.json')) as f:
    assert json.load(f)['fixed']['confusion'] == pooled['confusion']
  subject = summary['folds'][0]['subject']
  model = checkpointing.load_model(os.path.join(workdir, 'folds', subject, 'model'))
  assert model.num_classes == 3

  # Finished folds are skipped: a second run trains nothing and agrees.
  state2, summary2 = train.train_and_evaluate(config, workdir)
  assert state2 is None
  assert summary2['fixed'] == pooled


def test_missing_licensed_dataset_is_a_clear_error(tmp_path):
  config = _config(str(tmp_path / 'empty'), dataset='smic/3class', build_if_missing=False)
  with pytest.raises(FileNotFoundError, match=r'smic/3class.*docs/DATA.md'):
    train.train_and_evaluate(config, str(tmp_path / 'run'))


def test_unknown_fold_subject(data_dir, tmp_path):
  config = _config(data_dir, folds='nobody')
  with pytest.raises(train.ConfigError, match='nobody'):
    train.train_and_evaluate(config, str(tmp_path / 'run'))
