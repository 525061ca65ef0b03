"""train_and_evaluate end to end on the tiny synthetic config; `config.init_from`
(every fold starts from a checkpoint; 0 steps scores it); flow-loss levers
that training refuses before writing."""

import json
import os
import re

import jax
import numpy as np
import pytest
from flax import nnx

from configs import test as test_config
from mol_jax import checkpointing, train
from mol_jax.data import input_pipeline, sources
from mol_jax.tools import still_check
from tests.random_weights import random_model
from tests.tiny_config import tiny_config as _config


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  return str(tmp_path_factory.mktemp('tfds'))


def test_train_and_evaluate_writes_results_and_resumes(data_dir, tmp_path):
  workdir = str(tmp_path / 'run')
  config = _config(data_dir)
  state, summary = train.train_and_evaluate(config, workdir)
  assert int(state.step) == config.num_train_steps
  assert summary['num_folds'] == 2
  pooled = summary['pooled']
  assert pooled['num_examples'] == sum(f['num_examples'] for f in summary['folds'].values())
  assert pooled['num_clips'] == sum(f['num_clips'] for f in summary['folds'].values())
  assert 0.0 <= pooled['uf1'] <= 1.0
  # The synthetic set holds the truth: MOL's landmarks and its baselines are
  # scored against it (the tiny config evaluates without the flow head).
  for key in ('landmark_nme_vs_truth', 'dlib_nme_vs_truth', 'mean_shape_nme_vs_truth',
              'landmark_nme_vs_targets', 'mean_shape_nme_vs_targets'):
    assert pooled[key] > 0, key
    assert all(f[key] > 0 for f in summary['folds'].values()), key
  assert 'flow_epe_vs_truth' not in pooled
  for name in ('results.json', 'results.md', 'confusion_fixed.png', 'metrics.jsonl'):
    assert os.path.exists(os.path.join(workdir, name)), name
  with open(os.path.join(workdir, 'results.json')) as f:
    assert json.load(f)['pooled']['confusion'] == pooled['confusion']
  subject = sorted(summary['folds'])[0]
  model = checkpointing.restore_model(os.path.join(workdir, 'folds', subject, 'model'))
  assert model.num_classes == 3
  metadata = checkpointing.load_metadata(os.path.join(workdir, 'folds', subject, 'model'))
  assert metadata['class_names'] == input_pipeline.class_names(config.dataset, data_dir)
  assert len(metadata['class_names']) == 3
  assert metadata['held_out_subject'] == subject
  assert metadata['alignment'] == 'per_frame'

  # Finished folds are skipped: a second run trains nothing and agrees.
  state2, summary2 = train.train_and_evaluate(config, workdir)
  assert state2 is None
  assert summary2['pooled'] == pooled

  # The still-clip check reads the run's fold models and held-out clips.
  check = still_check.check_run(workdir, data_dir)
  assert sorted(check['folds']) == sorted(summary['folds'])
  for subject, fold in summary['folds'].items():
    row = check['folds'][subject]
    assert row['clips'] == fold['num_examples']
    assert sum(row['still_predictions']) == row['clips']
    # One clip per video in this set: the moving accuracy is the run's own.
    assert abs(row['accuracy'] - fold['accuracy']) < 1e-6
  assert os.path.isfile(os.path.join(workdir, still_check.RESULT))
  with pytest.raises(FileNotFoundError, match='finished LOSO run'):
    still_check.check_run(str(tmp_path / 'nothing'), data_dir)


def test_missing_licensed_dataset_is_a_clear_error(tmp_path):
  config = _config(str(tmp_path / 'empty'), dataset='smic/3class', build_if_missing=False)
  with pytest.raises(FileNotFoundError, match=r'smic/3class.*docs/DATA.md'):
    train.train_and_evaluate(config, str(tmp_path / 'run'))


def test_unknown_fold_subject(data_dir, tmp_path):
  config = _config(data_dir, folds='nobody')
  with pytest.raises(train.ConfigError, match='nobody'):
    train.train_and_evaluate(config, str(tmp_path / 'run'))


def _random_batch():
  """Two random clips with targets, for one training step."""
  rng = np.random.default_rng(0)
  return {
      'video': rng.standard_normal((2, 8, 128, 128, 1)).astype(np.float32),
      'flow': rng.standard_normal((2, 7, 128, 128, 2)).astype(np.float32),
      'landmarks': rng.uniform(20, 100, (2, 7, 68, 2)).astype(np.float32),
      'label': np.array([0, 2], np.int32),
      'mask': np.ones(2, np.float32),
  }


def test_bfloat16_compute_keeps_float32_master_weights():
  """bfloat16 forward/backward: same loss to bf16 precision, float32 state."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from mol_jax import sharding  # pylint: disable=g-import-not-at-top
  config = _config('unused', **{'loss.flow_pairs_per_step': 1})
  batch = _random_batch()
  mesh = sharding.create_mesh(1)
  results = {}
  for dtype in ('float32', 'bfloat16'):
    config.model.compute_dtype = dtype
    tx = train.create_optimizer(config)
    graphdef, state = train.create_train_state(config, 3, 0, tx)
    steps = train.Steps(config, graphdef, tx, state, mesh)
    new_state, metrics = steps.train(steps.place(state), sharding.global_batch(batch, mesh))
    results[dtype] = (new_state, jax.device_get(metrics))
  (state32, m32), (state16, m16) = results['float32'], results['bfloat16']
  assert int(m16['nonfinite']) == 0
  for leaf in jax.tree.leaves((state16.params, state16.batch_stats, state16.opt_state)):
    assert leaf.dtype in (jnp.float32, jnp.int32), leaf.dtype
  # Landmarks and flow agree to bf16 precision; the class loss less closely,
  # as bf16 features can pick other kNN neighbours in the CCC blocks.
  for name, rtol in (('loss/mer', 0.25), ('loss/landmarks', 0.05), ('loss/flow', 0.05)):
    np.testing.assert_allclose(m16[name], m32[name], rtol=rtol)
  assert float(m16['loss/mer']) != float(m32['loss/mer'])  # it did compute in bf16


def test_unknown_compute_dtype(tmp_path):
  config = _config(str(tmp_path), **{'model.compute_dtype': 'float16'})
  with pytest.raises(train.ConfigError, match='compute_dtype'):
    train.train_and_evaluate(config, str(tmp_path / 'run'))


@pytest.mark.parametrize('field, value', [('eval_unit', 'frame'),
                                           ('augment.crop_jitter', 9),
                                           ('augment.scale', 1.0),
                                           ('loss.flow_clips_per_step', 99)])
def test_bad_training_option_fails_before_writing(tmp_path, field, value):
  config = _config(str(tmp_path), **{field: value})
  with pytest.raises(train.ConfigError, match=f'config.{field}'):
    train.train_and_evaluate(config, str(tmp_path / 'run'))
  assert not (tmp_path / 'run').exists()


def test_heads_with_zero_loss_weight_stay_frozen():
  """of_weight = ldm_weight = 0: the flow and landmark heads are not trained."""
  import jax  # pylint: disable=g-import-not-at-top
  from mol_jax import sharding  # pylint: disable=g-import-not-at-top
  config = _config('unused', **{'loss.of_weight': 0.0, 'loss.ldm_weight': 0.0,
                                'optimizer.weight_decay': 0.1})
  assert train.frozen_heads(0.0, 0.0) == ('flownet', 'ldm_predictor')
  assert train.frozen_heads(10.0, 0.5) == ()
  batch = _random_batch()
  mesh = sharding.create_mesh(1)
  tx = train.create_optimizer(config)
  graphdef, state = train.create_train_state(config, 3, 0, tx)
  # No optimiser state for the frozen heads.
  assert 'flownet' not in str(jax.tree_util.tree_structure(state.opt_state))
  before = jax.device_get(state.params)
  steps = train.Steps(config, graphdef, tx, state, mesh)
  new_state, metrics = steps.train(steps.place(state), sharding.global_batch(batch, mesh))
  after = jax.device_get(new_state.params)
  assert int(metrics['nonfinite']) == 0 and np.isfinite(float(metrics['loss/landmarks']))
  for name in ('flownet', 'ldm_predictor'):
    for a, b in zip(jax.tree.leaves(before[name]), jax.tree.leaves(after[name])):
      np.testing.assert_array_equal(a, b)  # Not even weight decay.
  for name in ('conv_stack', 'fcc_1', 'ccc_2', 'mer_3dcnn'):
    assert any(not np.array_equal(a, b) for a, b in
               zip(jax.tree.leaves(before[name]), jax.tree.leaves(after[name]))), name
  assert float(metrics['loss']) == float(metrics['loss/mer'])


def test_a_non_finite_step_leaves_the_state_as_it_was():
  """A NaN in the batch: nonfinite 1 and no change to any weight, moment,
  BatchNorm statistic or the step count; a finite step then trains."""
  import jax  # pylint: disable=g-import-not-at-top
  from mol_jax import sharding  # pylint: disable=g-import-not-at-top
  config = _config('unused', **{'loss.of_weight': 0.0})  # The guard is the same; compiles faster.
  mesh = sharding.create_mesh(1)
  tx = train.create_optimizer(config)
  graphdef, state = train.create_train_state(config, 3, 0, tx)
  steps = train.Steps(config, graphdef, tx, state, mesh)
  state = steps.place(state)
  before = jax.device_get(state)
  bad = _random_batch()
  bad['video'][1, 3, 5, 7] = np.nan
  state, metrics = steps.train(state, sharding.global_batch(bad, mesh))  # `state` is donated.
  after = jax.device_get(state)
  assert int(metrics['nonfinite']) == 1 and float(metrics['update_norm']) == 0.0
  for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(after)):
    np.testing.assert_array_equal(a, b)
  state, metrics = steps.train(state, sharding.global_batch(_random_batch(), mesh))
  assert int(metrics['nonfinite']) == 0 and int(state.step) == 1
  assert any(not np.array_equal(a, b) for a, b in
             zip(jax.tree.leaves(before.params), jax.tree.leaves(jax.device_get(state.params))))
  assert any(not np.array_equal(a, b) for a, b in
             zip(jax.tree.leaves(before.batch_stats),
                 jax.tree.leaves(jax.device_get(state.batch_stats))))


def test_evaluate_pools_the_clips_of_a_video():
  """Two batches of a 3-video subject: video 1 has three clips, one padded row."""
  import jax  # pylint: disable=g-import-not-at-top
  from mol_jax import sharding  # pylint: disable=g-import-not-at-top

  class FakeSteps:
    mesh = sharding.create_mesh(1)
    # The "model" reads its logits off the batch, so the expected answer is known.
    eval = staticmethod(jax.jit(lambda state, batch, mean_landmarks: {
        'logits': batch['fake_logits'], 'landmark_nme_vs_targets': batch['mask']}))

  # video 0: one clip, class 2 -> predicted 2. video 1 (label 0): clips say 1
  # (weakly), 1 (weakly), 0 (strongly): per clip 2 of 3 wrong, the video's mean
  # softmax says 0. video 2 (label 1): one clip, predicted 1.
  logits = np.array([[0, 0, 5], [0, 0.2, 0], [0, 0.2, 0], [6, 0, 0], [0, 4, 0], [9, 9, 9]],
                    np.float32)
  labels = np.array([2, 0, 0, 0, 1, 0], np.int32)
  video_index = np.array([0, 1, 1, 1, 2, -1], np.int32)
  mask = np.array([1, 1, 1, 1, 1, 0], np.float32)
  batches = [{'fake_logits': logits[i:i + 3], 'label': labels[i:i + 3],
              'video_index': video_index[i:i + 3], 'mask': mask[i:i + 3]} for i in (0, 3)]

  class FakeEval(list):
    video_ids = ['a', 'b', 'c']

  by_video = train.evaluate(FakeSteps(), None, FakeEval(batches), 3, np.zeros((7, 68, 2)), 'video')
  assert by_video['labels'] == [2, 0, 1]
  assert by_video['predictions'] == [2, 0, 1]
  assert by_video['video_ids'] == ['a', 'b', 'c']
  assert by_video['accuracy'] == 1.0
  assert by_video['num_clips'] == 5
  assert by_video['landmark_nme_vs_targets'] == 1.0
  by_clip = train.evaluate(FakeSteps(), None, FakeEval(batches), 3, np.zeros((7, 68, 2)), 'clip')
  assert by_clip['predictions'] == [2, 1, 1, 0, 1]
  assert by_clip['video_ids'] == ['a', 'b', 'b', 'b', 'c']
  assert by_clip['accuracy'] == pytest.approx(3 / 5)


def test_seeds_repeat_the_protocol_and_report_mean_and_std(data_dir, tmp_path):
  workdir = tmp_path / 'seeds'
  with pytest.raises(train.ConfigError, match='comma-separated integers'):
    train.train_and_evaluate(_config(data_dir, seeds='0,one'), str(workdir))
  assert not workdir.exists()
  subject = input_pipeline.list_subjects(test_config.get_config().dataset, data_dir)[0]
  config = _config(data_dir, seeds='3,4', folds=subject)
  state, summary = train.train_and_evaluate(config, str(workdir))
  assert state is not None and summary['seeds'] == [3, 4]
  for seed in ('3', '4'):
    with open(workdir / 'seeds' / seed / 'results.json') as f:
      own = json.load(f)['pooled']
    assert summary['per_seed'][seed]['uf1'] == own['uf1']
    assert summary['per_seed'][seed]['landmark_nme_vs_truth'] == own['landmark_nme_vs_truth']
  for key in ('uf1', 'uar', 'landmark_nme_vs_truth'):
    values = [summary['per_seed'][s][key] for s in ('3', '4')]
    assert summary['over_seeds'][key] == {'mean': pytest.approx(np.mean(values)),
                                          'std': pytest.approx(np.std(values))}
  # Different seeds train different models.
  nme = [summary['per_seed'][s]['landmark_nme_vs_truth'] for s in ('3', '4')]
  assert nme[0] != nme[1]
  with open(workdir / 'results.json') as f:
    assert json.load(f)['over_seeds'] == summary['over_seeds']
  text = (workdir / 'results.md').read_text()
  assert '| **mean ± std** |' in text and '| 3 |' in text and '| 4 |' in text
  # Resumable: every seed's folds are finished, so nothing is trained again.
  state2, summary2 = train.train_and_evaluate(config, str(workdir))
  assert state2 is None and summary2 == summary


def test_train_rejects_bad_levers_before_writing(tmp_path):
  config = test_config.get_config()
  config.data_dir = str(tmp_path / 'tfds')
  config.loss.flow_loss = 'huber'
  workdir = tmp_path / 'run'
  with pytest.raises(train.ConfigError, match='config.loss.flow_loss'):
    train.train_and_evaluate(config, str(workdir))
  assert not workdir.exists() and not (tmp_path / 'tfds').exists()


def test_true_flow_target_needs_a_set_with_the_truth(data_dir, tmp_path, monkeypatch):
  config = test_config.get_config()
  config.data_dir = data_dir
  config.loss.flow_target = 'true_flow'
  monkeypatch.setattr(sources, 'has_truth', lambda *args: False)
  with pytest.raises(train.ConfigError, match="config.loss.flow_target='true_flow'"):
    train.train_and_evaluate(config, str(tmp_path / 'run'))
  assert not (tmp_path / 'run').exists()


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
