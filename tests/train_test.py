"""train_and_evaluate end to end on the tiny synthetic config."""

import json
import os

import numpy as np
import pytest

from configs import test as test_config
from mol_jax import checkpointing, train
from mol_jax.data import input_pipeline
from mol_jax.tools import still_check
from tiny_config import tiny_config as _config


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
                                           ('augment.scale', 1.0)])
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
