"""Each of MOL's three heads learns: short training runs on a few synthetic clips.

The clips of `synthetic_me/small` hold the exact motion (`true_flow`,
`true_landmarks`) beside the training targets (TV-L1 flow, dlib landmarks).
MOL trains on the targets, as on real data, and is scored against the truth
on the same clips: a head that learns from its targets must end far closer to
the truth than its baseline. Each test fails when its head is frozen (loss
weight 0) or its gradient path is cut.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import test as test_config
from mol_jax import losses, train
from mol_jax.data import input_pipeline, sources

NUM_CLIPS = 2


@pytest.fixture(scope='module')
def clips(tmp_path_factory):
  """(config, batch) of the first clip of each subject of synthetic_me/small, as
  evaluation sees them (centred crop, with the truth)."""
  config = test_config.get_config()
  config.data_dir = str(tmp_path_factory.mktemp('tfds'))
  sources.ensure_built([config.dataset], config.data_dir, build_if_missing=True)
  subjects = input_pipeline.list_subjects(config.dataset, config.data_dir)
  examples = [clip for _, clip in input_pipeline.evaluation_clips(
      config.dataset, config.data_dir, subjects, max_clips_per_subject=1)][:NUM_CLIPS]
  batch = {k: np.stack([e[k] for e in examples]) for k in examples[0] if k != 'video_id'}
  batch['mask'] = np.ones(len(examples), np.float32)
  return config, batch


def _train(config, batch, steps: int, held_out=None, **overrides):
  """(scores before, scores after, mean classification loss of the first and
  last 5 steps): `steps` full-batch AdamW steps on `batch`, evaluated on it
  (or on the `held_out` batch)."""
  config = config.copy_and_resolve_references()
  config.batch_size = NUM_CLIPS
  config.model.dropout_rate = 0.0
  config.optimizer.learning_rate = 1e-3
  for key, value in overrides.items():
    node = config
    *parents, leaf = key.split('.')
    for p in parents:
      node = getattr(node, p)
    setattr(node, leaf, value)
  tx = train.create_optimizer(config)
  mean_landmarks = batch['landmarks'].mean(0)
  graphdef, state = train.create_train_state(config, 3, 0, tx, mean_landmarks)
  flow_options = losses.flow_loss_options(config.loss)
  # The truth is a training input only where the flow term is trained on it.
  train_batch = {k: v for k, v in batch.items()
                 if k not in input_pipeline.TRUTH_KEYS or k == flow_options.target}
  step = jax.jit(functools.partial(
      train.train_step, graphdef=graphdef, tx=tx, of_weight=config.loss.of_weight,
      ldm_weight=config.loss.ldm_weight, flow_pairs_per_step=config.loss.flow_pairs_per_step,
      flow_options=flow_options))
  evaluate = jax.jit(functools.partial(train.eval_step, graphdef=graphdef, with_flow=True))
  scored = batch if held_out is None else held_out
  scores = lambda state: {k: float(np.mean(v)) for k, v in evaluate(
      state, scored, jnp.asarray(mean_landmarks)).items() if k != 'logits'}
  before = scores(state)
  mer = []
  for _ in range(steps):
    state, metrics = step(state, train_batch)
    # A non-finite step leaves the state as it was: a head would look frozen.
    assert float(metrics['nonfinite']) == 0
    mer.append(float(metrics['loss/mer']))
  return before, scores(state), (np.mean(mer[:5]), np.mean(mer[-5:]))


def test_flow_head_learns_the_motion(clips):
  config, batch = clips
  # At 1e-3 the flow head's first steps overshoot (3.8x the zero-flow error
  # after 10 steps) and its ReLUs can die, leaving it at zero flow or not,
  # depending on rounding; at 3e-4 the error falls steadily (0.85, 0.79,
  # 0.77 of zero flow after 10, 20, 30 steps).
  before, after, _ = _train(config, batch, 30, **{
      'optimizer.learning_rate': 3e-4, 'loss.ldm_weight': 0.0,
      'loss.flow_pairs_per_step': 7, 'model.flow_at_zero': True})
  print('flow', before, after)
  # Starts as the zero-flow predictor and moves towards the true motion; a
  # frozen head, or one cut from its loss, stays at exactly 1.0.
  assert before['flow_epe_vs_truth'] == pytest.approx(before['zero_flow_epe_vs_truth'], rel=1e-3)
  assert after['flow_epe_vs_truth'] < 0.9 * after['zero_flow_epe_vs_truth']
  assert after['flow_epe_vs_targets'] < 0.9 * after['zero_flow_epe_vs_targets']


@pytest.fixture(scope='module')
def subjects(clips):
  """(every clip of the first subject, every clip of the second) of synthetic_me/small."""
  config, _ = clips
  names = input_pipeline.list_subjects(config.dataset, config.data_dir)
  batches = []
  for name in names[:2]:
    examples = [clip for _, clip in input_pipeline.evaluation_clips(
        config.dataset, config.data_dir, [name])]
    batch = {k: np.stack([e[k] for e in examples]) for k in examples[0] if k != 'video_id'}
    batch['mask'] = np.ones(len(examples), np.float32)
    batches.append(batch)
  return batches


# The flow layers of configs/demo.py: the small-displacement refinement at a
# higher learning rate, trained on one subject's clips (all 7 pairs) and
# scored on the other's.
REFINEMENT = {'optimizer.learning_rate': 3e-4, 'loss.ldm_weight': 0.0,
              'loss.flow_pairs_per_step': 7, 'model.flow_at_zero': True,
              'model.flow_refinement': True,
              'optimizer.lr_multipliers': 'flownet=10,flow_refine=10'}


@pytest.fixture(scope='module')
def refinement_on_tvl1(clips, subjects):
  """(held-out scores before, after): REFINEMENT trained on the TV-L1 targets."""
  config, _ = clips
  seen, held_out = subjects
  before, after, _ = _train(config, seen, 40, held_out=held_out, **REFINEMENT)
  print('held-out flow, trained on TV-L1', before, after)
  return before, after


def test_flow_refinement_learns_motion_it_was_not_trained_on(refinement_on_tvl1):
  # The official head alone stays at zero flow in such a run; a refinement
  # that is frozen or cut from the flow loss stays at exactly 1.0.
  before, after = refinement_on_tvl1
  assert before['flow_epe_vs_truth'] == pytest.approx(before['zero_flow_epe_vs_truth'], rel=1e-3)
  # With its Lucas-Kanade inputs the held-out error falls to about 0.4 of
  # zero flow in these 40 steps (2026-12-07).
  assert after['flow_epe_vs_truth'] < 0.6 * after['zero_flow_epe_vs_truth']


def test_pretraining_on_the_exact_motion_beats_training_on_tvl1(clips, subjects,
                                                                refinement_on_tvl1):
  # configs/flow_pretrain.py's flow term: against the exact motion, by the
  # end-point error. The same layers and steps as on the TV-L1 targets must
  # end closer to the truth on the held-out subject (0.24 against 0.28 px,
  # 2026-12-07); a refinement frozen or cut from the loss stays at zero flow.
  config, _ = clips
  seen, held_out = subjects
  _, on_tvl1 = refinement_on_tvl1
  _, after, _ = _train(config, seen, 40, held_out=held_out, **REFINEMENT, **{
      'loss.flow_target': 'true_flow', 'loss.flow_loss': 'epe'})
  print('held-out flow, pre-training', after)
  assert after['flow_epe_vs_truth'] < 0.95 * on_tvl1['flow_epe_vs_truth']


def test_landmark_head_learns_the_landmarks(clips):
  config, batch = clips
  before, after, _ = _train(config, batch, 40, **{
      'loss.of_weight': 0.0, 'model.landmarks_at_mean_shape': True})
  print('landmarks', before, after)
  # Starts as the mean-shape predictor, ends well below it.
  assert before['landmark_nme_vs_truth'] == pytest.approx(
      before['mean_shape_nme_vs_truth'], rel=1e-3)
  assert after['landmark_nme_vs_truth'] < 0.6 * after['mean_shape_nme_vs_truth']


def test_landmark_head_learns_from_the_official_initialisation(clips):
  config, batch = clips
  before, after, _ = _train(config, batch, 40, **{'loss.of_weight': 0.0})
  print('landmarks official', before, after)
  assert after['landmark_nme_vs_truth'] < 0.2 * before['landmark_nme_vs_truth']


def test_class_loss_falls(clips):
  config, batch = clips
  _, _, (first, last) = _train(config, batch, 20, **{
      'loss.of_weight': 0.0, 'loss.ldm_weight': 0.0})
  assert last < 0.5 * first


# The layers every task shares: MOL's claim is that the flow and landmark
# tasks shape these.
SHARED_TRUNK = ('conv_stack', 'fcc_1', 'fcc_2', 'ccc_1', 'ccc_2')


def test_each_auxiliary_term_reaches_the_shared_trunk(clips):
  """Each auxiliary term sends gradient into the shared layers it reads. A stop_gradient
  (or a detached copy) between the trunk and a head leaves that head's term
  exactly zero there. At the official initialisation: with `flow_at_zero`
  the flow term's gradient is zero everywhere but its last layer until the
  first update."""
  config, batch = clips
  config = config.copy_and_resolve_references()
  tx = train.create_optimizer(config)
  graphdef, state = train.create_train_state(config, 3, 0, tx, batch['landmarks'].mean(0))
  train_batch = {k: v for k, v in batch.items() if k not in input_pipeline.TRUTH_KEYS}
  norms = jax.jit(functools.partial(
      train.term_grad_norms, graphdef=graphdef, of_weight=config.loss.of_weight,
      ldm_weight=config.loss.ldm_weight, flow_pairs_per_step=7,
      groups=SHARED_TRUNK))(state, train_batch)
  norms = {k: float(v) for k, v in norms.items()}
  print('trunk gradients', norms)
  # The landmark head reads each pair's second-frame map only (FCC_2, CCC_2),
  # as in the official network; the flow head reads both.
  reaches = {'flow': SHARED_TRUNK, 'landmarks': ('conv_stack', 'fcc_2', 'ccc_2')}
  for term, groups in reaches.items():
    for group in groups:
      assert norms[f'grad_norm/{term}/{group}'] > 1e-6 * norms[f'grad_norm/mer/{group}'], (
          group, term, norms)
  for group in sorted(set(SHARED_TRUNK) - set(reaches['landmarks'])):
    assert norms[f'grad_norm/landmarks/{group}'] == 0.0
