"""experiment.validate: one ConfigError naming the field for every config
mistake, before anything is built or written (a pre-training stage's and
the outer config's alike); experiment.resolve: the experiment read once."""

import pytest

from mol_jax import experiment, protocols, train
from tests.tiny_config import tiny_config as _config


BAD = [
    ({'seeds': '0,one'}, 'config.seeds must be comma-separated integers'),
    ({'seeds': '1,1'}, 'config.seeds repeats a seed'),
    ({'model.compute_dtype': 'float16'}, 'config.model.compute_dtype'),
    ({'eval_unit': 'frame'}, 'config.eval_unit'),
    ({'loss.flow_loss': 'huber'}, 'config.loss.flow_loss'),
    ({'loss.flow_scale': 0.0}, 'config.loss.flow_scale'),
    ({'loss.flow_target': 'truth'}, 'config.loss.flow_target'),
    ({'optimizer.schedule': 'linear'}, 'config.optimizer.schedule'),
    ({'optimizer.lr_multipliers': 'trunk=2'}, 'config.optimizer.lr_multipliers'),
    ({'augment.crop_jitter': 9}, 'config.augment.crop_jitter'),
    ({'augment.scale': 1.0}, 'config.augment.scale'),
    ({'batch_size': 0}, 'config.batch_size must be at least 1'),
    ({'eval_batch_size': 0}, 'config.eval_batch_size must be at least 1'),
    ({'num_train_steps': -1}, 'config.num_train_steps must be at least 0'),
    ({'num_train_steps': 0}, 'config.init_from is empty'),
    ({'dataset': ''}, 'config.dataset is empty'),
    ({'dataset': 'synthetic_me/small,,'}, 'has an empty entry'),
    ({'dataset': 'synthetic_me/small,synthetic_me/small', 'protocol': 'composite'}, 'twice'),
    ({'dataset': 'synthetic_me/smal'}, "synthetic_me has no config 'smal'"),
    ({'dataset': 'samm/3class,casme2/3class_per_clip', 'protocol': 'composite'},
     'config.dataset mixes alignments'),
    ({'protocol': 'kfold'}, 'config.protocol must be one of'),
    ({'dataset': 'synthetic_me/small,synthetic_me/small_b'}, "use 'composite'"),
    ({'protocol': 'lodo'}, "config.protocol='lodo' needs at least two datasets"),
    ({'mesh.num_devices': 1000}, 'config.mesh.num_devices=1000'),
    ({'mesh.param_sharding': 'zero'}, 'config.mesh.param_sharding must be one of'),
    ({'mesh.num_devices': 2, 'batch_size': 3}, 'must be multiples of the 2 devices'),
]


@pytest.mark.parametrize('overrides, message', BAD)
def test_every_mistake_is_a_config_error_before_anything_is_written(tmp_path, overrides,
                                                                    message):
  data, work = tmp_path / 'tfds', tmp_path / 'run'
  config = _config(str(data), **overrides)
  with pytest.raises(experiment.ConfigError, match=message):
    experiment.validate(config)
  # The training entry point raises the same before building or writing.
  with pytest.raises(train.ConfigError, match=message):
    train.train_and_evaluate(config, str(work))
  assert not work.exists() and not data.exists()


def test_the_official_recipe_and_the_shipped_test_config_validate():
  from configs import default  # pylint: disable=g-import-not-at-top
  experiment.validate(_config(''))
  experiment.validate(default.get_config())


def test_train_reexports_the_one_error_type():
  assert train.ConfigError is experiment.ConfigError
  assert issubclass(experiment.ConfigError, ValueError)


def test_an_outer_mistake_is_found_before_the_pretraining_stage_trains(tmp_path):
  """The stage is valid; the run it starts is not: nothing may train first."""
  data, work = tmp_path / 'tfds', tmp_path / 'run'
  stage = _config(str(data), folds='sy01', num_train_steps=1)
  config = _config(str(data), pretrain=stage, eval_unit='frame')
  with pytest.raises(train.ConfigError, match='config.eval_unit'):
    train.train_and_evaluate(config, str(work))
  assert not work.exists() and not data.exists()


def test_a_stage_mistake_is_named_under_pretrain(tmp_path):
  data, work = tmp_path / 'tfds', tmp_path / 'run'
  stage = _config(str(data), folds='sy01', batch_size=0)
  config = _config(str(data), pretrain=stage)
  with pytest.raises(train.ConfigError, match=r'config\.pretrain: config\.batch_size'):
    train.train_and_evaluate(config, str(work))
  assert not work.exists() and not data.exists()


def test_a_pretraining_stage_counts_as_a_start_for_evaluation_only():
  """num_train_steps=0 scores the stage's model: no init_from needed."""
  stage = _config('', folds='sy01', num_train_steps=1)
  experiment.validate(_config('', pretrain=stage, num_train_steps=0))
  with pytest.raises(experiment.ConfigError, match='config.pretrain and config.init_from'):
    experiment.validate(_config('', pretrain=stage, init_from='somewhere'))


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  return str(tmp_path_factory.mktemp('tfds'))


def test_resolve_builds_the_set_and_reads_the_experiment_once(data_dir):
  config = _config(data_dir)
  experiment.validate(config)
  exp = experiment.resolve(config)  # Builds synthetic_me/small (build_if_missing).
  assert exp.names == ('synthetic_me/small',) and exp.data_dir == data_dir
  assert exp.folds == tuple(protocols.folds('loso', config.dataset, data_dir))
  assert exp.chosen == {f.name for f in exp.folds} and len(exp.folds) == 2
  assert exp.class_names == ('surprise', 'positive', 'negative') and exp.num_classes == 3
  assert exp.alignment == 'per_frame' and exp.mesh.size == 1
  one = experiment.resolve(_config(data_dir, folds=exp.folds[1].name))
  assert one.chosen == {exp.folds[1].name}
  with pytest.raises(experiment.ConfigError, match=r"config.folds names folds \['nobody'\]"):
    experiment.resolve(_config(data_dir, folds='nobody'))
