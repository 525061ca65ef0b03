"""Metrics and losses against scikit-learn and hand-computed values."""

import jax.numpy as jnp
import numpy as np
import pytest
from sklearn import metrics as skm

from mol_jax import losses, metrics, reporting


@pytest.mark.parametrize('seed', range(20))
def test_metrics_match_sklearn_on_random_confusions(seed):
  rng = np.random.default_rng(seed)
  num_classes = int(rng.integers(2, 6))
  n = int(rng.integers(1, 40))
  labels = rng.integers(0, num_classes, n)
  predictions = rng.integers(0, num_classes, n)
  if seed % 3 == 0:  # a class absent from the ground truth
    labels = np.where(labels == 0, 1, labels)
  if seed % 4 == 0:  # a class never predicted
    predictions = np.where(predictions == num_classes - 1, 0, predictions)
  confusion = metrics.confusion_matrix(labels, predictions, num_classes)
  np.testing.assert_array_equal(
      confusion, skm.confusion_matrix(labels, predictions, labels=range(num_classes)))
  got = metrics.summarize(confusion)
  kw = dict(labels=list(range(num_classes)), zero_division=0)
  assert got['accuracy'] == pytest.approx(skm.accuracy_score(labels, predictions))
  assert got['war'] == got['accuracy']
  assert got['uar'] == pytest.approx(skm.recall_score(labels, predictions, average='macro', **kw))
  assert got['uf1'] == pytest.approx(skm.f1_score(labels, predictions, average='macro', **kw))
  assert got['wf1'] == pytest.approx(skm.f1_score(labels, predictions, average='weighted', **kw))


def test_confusion_mask_drops_padding():
  c = metrics.confusion_matrix([0, 1, 2, 0], [0, 1, 1, 2], 3, mask=[1, 1, 1, 0])
  np.testing.assert_array_equal(c, [[1, 0, 0], [0, 1, 0], [0, 1, 0]])


def test_pool_clips_by_video_averages_softmax():
  logits = np.log(np.array([[0.6, 0.4], [0.1, 0.9], [0.7, 0.3], [0.2, 0.8]]))
  probs, labels, videos = metrics.pool_clips_by_video(logits, [1, 1, 0, 0], [7, 7, 3, 3])
  np.testing.assert_array_equal(videos, [3, 7])
  np.testing.assert_array_equal(labels, [0, 1])
  np.testing.assert_allclose(probs, [[0.45, 0.55], [0.35, 0.65]])


def test_pool_clips_by_video_rejects_mixed_labels():
  with pytest.raises(ValueError, match='video 4 has clips of different labels'):
    metrics.pool_clips_by_video(np.zeros((3, 2)), [0, 1, 1], [4, 4, 5])


def test_hand_computed_uf1():
  # class 0: P=1, R=.5 -> F1=2/3; class 1: P=.5, R=1 -> 2/3; class 2 absent, never predicted -> 0
  got = metrics.summarize([[1, 1, 0], [0, 1, 0], [0, 0, 0]])
  assert got['uf1'] == pytest.approx((2 / 3 + 2 / 3 + 0) / 3)
  assert got['uar'] == pytest.approx((0.5 + 1 + 0) / 3)
  assert got['accuracy'] == pytest.approx(2 / 3)


def _landmarks(rng, batch, pairs):
  base = rng.uniform(20, 100, (batch, pairs, 68, 2)).astype(np.float32)
  base[..., 36:42, :] = [40.0, 50.0]  # left eye centre (40, 50)
  base[..., 42:48, :] = [70.0, 46.0]  # right eye centre (70, 46): distance 30.2655
  return base


def test_landmark_loss_is_official_formula():
  rng = np.random.default_rng(0)
  target = _landmarks(rng, 2, 3)
  pred = target + rng.normal(0, 2, target.shape).astype(np.float32)
  mask = np.ones(2, np.float32)
  ipd = np.hypot(30.0, 4.0)
  expected = np.abs(pred - target).sum(axis=(2, 3)) / ipd  # [b, pairs]
  expected = expected.sum() / (2 * 68)
  got = losses.landmark_loss(jnp.asarray(pred), jnp.asarray(target), jnp.asarray(mask))
  assert float(got) == pytest.approx(expected, rel=1e-5)
  # Padding does not change it.
  pad = lambda x: np.concatenate([x, x[:1] * 0 + 7], 0)
  got_padded = losses.landmark_loss(jnp.asarray(pad(pred)), jnp.asarray(pad(target)),
                                    jnp.asarray([1, 1, 0], jnp.float32))
  assert float(got_padded) == pytest.approx(expected, rel=1e-5)


def test_flow_loss_is_mse_over_pairs():
  rng = np.random.default_rng(1)
  flow = rng.normal(size=(2, 7, 4, 4, 2)).astype(np.float32)
  target = rng.normal(size=(2, 7, 4, 4, 2)).astype(np.float32)
  got = losses.flow_loss(jnp.asarray(flow), jnp.asarray(target), jnp.ones(2))
  assert float(got) == pytest.approx(np.mean((flow - target) ** 2) / 7, rel=1e-5)


def test_classification_loss_is_mean_cross_entropy():
  logits = np.array([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]], np.float32)
  labels = np.array([0, 2])
  expected = np.mean([-np.log(np.exp(2) / (np.exp(2) + 1 + np.exp(-1))), np.log(3)])
  got = losses.classification_loss(jnp.asarray(logits), jnp.asarray(labels), jnp.ones(2))
  assert float(got) == pytest.approx(expected, rel=1e-5)


def test_flow_baseline_features_pool_magnitude_and_direction():
  from mol_jax.tools import flow_baseline  # pylint: disable=g-import-not-at-top
  flow = np.zeros((7, 16, 16, 2), np.float32)
  flow[3, :8, :8] = (3.0, 4.0)  # one pair moves the top-left quarter by 5 px
  features = flow_baseline.flow_features(flow, grid=2)
  np.testing.assert_allclose(features[:4], [5.0, 0.0, 0.0, 0.0])  # peak magnitude
  np.testing.assert_allclose(features[4:], [3.0, 4.0] + [0.0] * 6)  # summed (x, y)


def test_frame_difference_features_take_the_peak_change_per_cell():
  from mol_jax.tools import flow_baseline  # pylint: disable=g-import-not-at-top
  video = np.zeros((8, 16, 16), np.float32)
  video[2, 8:, :8] = -2.0  # frame 2 darkens the bottom-left quarter
  video[5, 8:, :8] = 1.0
  video[5:, :8, 8:] = 0.5  # the top-right quarter brightens from frame 5 on
  features = flow_baseline.frame_difference_features(video, grid=2)
  np.testing.assert_allclose(features, [0.0, 0.5, 2.0, 0.0])


def test_metric_writer_drops_the_steps_a_resumed_fold_replays(tmp_path):
  """A fold killed after logging steps 1-3 with its checkpoint at step 2
  replays step 3: metrics.jsonl then holds each (fold, step) once."""
  import json  # pylint: disable=import-outside-toplevel
  writer = reporting.MetricWriter(str(tmp_path))
  for step in (1, 2, 3):
    writer.scalars('sy01/train', step, {'loss': float(step)})
  writer.scalars('sy01/test', 3, {'accuracy': 0.5})
  writer.scalars('sy02/train', 3, {'loss': 9.0})  # Another fold keeps its rows.
  writer.close()
  resumed = reporting.MetricWriter(str(tmp_path))
  assert resumed.drop_after(('sy01/train', 'sy01/test'), 2) == 2
  resumed.scalars('sy01/train', 3, {'loss': 3.5})
  resumed.close()
  rows = [json.loads(line) for line in (tmp_path / 'metrics.jsonl').read_text().splitlines()]
  assert [(r['prefix'], r['step']) for r in rows] == [
      ('sy01/train', 1), ('sy01/train', 2), ('sy02/train', 3), ('sy01/train', 3)]
  assert rows[-1]['loss'] == 3.5
