"""The cross-dataset protocols end to end on two synthetic 'datasets'.

`synthetic_me/small` and `synthetic_me/small_b` are generated from different
seeds (other faces, other motions) with the same subject names, which is
what the dataset prefixes must keep apart (tests/data/sources_test.py reads
them as one collection).
"""

import json
import os

import pytest

from configs import test as test_config
from mol_jax import checkpointing, protocols, train
from mol_jax.data import input_pipeline, sources
from tests import two_sets
from tests.two_sets import ALIASES, TWO


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  return two_sets.build(tmp_path_factory)


def _config(data_dir, **overrides):
  config = test_config.get_config()
  config.data_dir, config.dataset = data_dir, TWO
  for key, value in overrides.items():
    setattr(config, key, value)
  return config


def test_protocol_folds(data_dir):
  lodo = protocols.folds('lodo', TWO, data_dir)
  assert [f.name for f in lodo] == list(ALIASES)
  by = sources.subjects_by_dataset(TWO, data_dir)
  assert [f.test_subjects for f in lodo] == [tuple(by[a]) for a in ALIASES]
  composite = protocols.folds('composite', TWO, data_dir)
  assert [f.name for f in composite] == input_pipeline.list_subjects(TWO, data_dir)
  assert all(f.test_subjects == (f.name,) and f.name.startswith(f.dataset + '_')
             for f in composite)
  with pytest.raises(ValueError, match="'loso' holds out subjects of one dataset"):
    protocols.folds('loso', TWO, data_dir)
  with pytest.raises(ValueError, match='needs at least two datasets'):
    protocols.folds('lodo', 'synthetic_me/small', data_dir)
  with pytest.raises(ValueError, match='must be one of'):
    protocols.folds('kfold', TWO, data_dir)


def test_bad_protocol_configs_fail_before_writing(data_dir, tmp_path):
  for overrides, message in (({'protocol': 'loso'}, "use 'composite'"),
                             ({'protocol': 'kfold'}, 'must be one of'),
                             ({'protocol': 'lodo', 'folds': 'casme2'}, 'folds'),
                             ({'dataset': TWO + ',synthetic_me/small'}, 'twice')):
    workdir = tmp_path / 'bad'
    with pytest.raises(train.ConfigError, match=message):
      train.train_and_evaluate(_config(data_dir, **overrides), str(workdir))
    assert not workdir.exists()


def test_lodo_trains_on_one_dataset_and_tests_on_the_other(data_dir, tmp_path):
  workdir = tmp_path / 'lodo'
  _, summary = train.train_and_evaluate(_config(data_dir, protocol='lodo'), str(workdir))
  assert summary['protocol'] == 'lodo' and summary['num_folds'] == 2
  assert sorted(summary['folds']) == sorted(ALIASES)
  for alias, name in zip(ALIASES, TWO.split(',')):
    held_out = sum(len(sources.source(name, data_dir, [s]))
                   for s in sources.list_subjects(name, data_dir))
    assert summary['folds'][alias]['num_clips'] == held_out
    metadata = checkpointing.load_metadata(os.path.join(workdir, 'folds', alias, 'model'))
    assert metadata['held_out_dataset'] == alias and metadata['protocol'] == 'lodo'
  pooled = summary['pooled']
  assert pooled['num_examples'] == sum(f['num_examples'] for f in summary['folds'].values())
  assert 'by_dataset' not in summary
  text = (workdir / 'results.md').read_text()
  assert text.startswith('# LODO results') and f'| {ALIASES[0]} |' in text


def test_composite_scores_per_fold_pooled_and_per_dataset(data_dir, tmp_path):
  workdir = tmp_path / 'composite'
  folds = [f'{a}_sy01' for a in ALIASES]
  config = _config(data_dir, protocol='composite', folds=','.join(folds))
  _, summary = train.train_and_evaluate(config, str(workdir))
  assert sorted(summary['folds']) == sorted(folds)
  by_dataset = summary['by_dataset']
  assert sorted(by_dataset) == sorted(ALIASES)
  for alias, fold in zip(ALIASES, folds):
    assert by_dataset[alias]['num_examples'] == summary['folds'][fold]['num_examples']
    assert by_dataset[alias]['uf1'] == pytest.approx(summary['folds'][fold]['uf1'])
  assert (summary['pooled']['num_examples']
          == sum(d['num_examples'] for d in by_dataset.values()))
  with open(workdir / 'results.json') as f:
    assert json.load(f)['by_dataset'] == json.loads(json.dumps(by_dataset))
  assert '## per dataset' in (workdir / 'results.md').read_text()
