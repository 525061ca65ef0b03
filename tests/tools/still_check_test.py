"""Tests of mol_jax.tools.still_check (the run-level check is in tests/train_test.py)."""

import numpy as np

from mol_jax.tools import still_check


def _clips(rng, labels):
  """Random faces; class c moves a bright spot in a different corner."""
  video = rng.normal(size=(len(labels), 8, 16, 16, 1)).astype(np.float32)
  for i, c in enumerate(labels):
    video[i, 1:, 4 * c:4 * c + 3, 2:5] += 5.0
  return video


def _motion_reader(video):
  """Logits from where the clip changes after its first frame."""
  change = np.abs(video[:, 1:] - video[:, :1]).mean(1)[..., 0]  # [b, 16, 16]
  logits = np.stack([change[:, 4 * c:4 * c + 3, 2:5].mean((1, 2)) for c in range(3)], -1)
  return logits + np.array([0.0, 0.0, 1e-3])  # a still clip: class 2 by a hair


def _face_reader(video):
  """Logits from the first frame alone (what a model that memorised faces does)."""
  return video[:, 0, :12, 2:5, 0].reshape(len(video), 3, -1).mean(-1)


def test_still_clips_repeat_the_first_frame():
  video = np.arange(2 * 8 * 3).reshape(2, 8, 3).astype(np.float32)
  still = still_check.still_clips(video)
  assert still.shape == video.shape
  np.testing.assert_array_equal(still, np.repeat(video[:, :1], 8, 1))


def test_a_model_that_reads_motion_is_at_chance_on_still_clips():
  rng = np.random.default_rng(0)
  labels = np.tile(np.arange(3), 10)
  result = still_check.compare(_motion_reader, _clips(rng, labels), labels, 3)
  assert result['clips'] == 30
  assert result['accuracy'] == 1.0
  assert result['still_predictions'] == [0, 0, 30]
  assert abs(result['still_accuracy'] - 1 / 3) < 1e-9


def test_a_model_that_reads_the_first_frame_is_not():
  rng = np.random.default_rng(1)
  labels = np.tile(np.arange(3), 10)
  video = _clips(rng, labels)
  video[np.arange(30), :, 4 * labels, 3, 0] += 20.0  # the class in every frame, frame 0 too
  result = still_check.compare(_face_reader, video, labels, 3)
  assert result['still_accuracy'] == result['accuracy'] == 1.0
