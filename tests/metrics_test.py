"""Metrics (`mol_jax.metrics`) against scikit-learn and hand-computed values."""

import numpy as np
import pytest
from sklearn import metrics as skm

from mol_jax import metrics


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
