"""mol_jax.data.faces on a real face photograph: detection, landmarks and the
alignment they set."""

import os

import numpy as np
import pytest

from mol_jax import clip_format
from mol_jax.data import faces
from tests.data.moved_face import shift as _shift


def test_alignment_is_rotation_and_shift_invariant(face, detector):
  aligned = []
  for dx, dy, angle in [(0, 0, 0), (9, -6, 12), (-7, 5, -10)]:
    image = _shift(face, dx, dy, angle)
    landmarks = detector.landmarks(image, detector.detect(image))
    m = faces.alignment_matrix(landmarks)
    out = faces.transform_points(landmarks.astype(np.float64), m)
    left = out[clip_format.LEFT_EYE].mean(0)
    right = out[clip_format.RIGHT_EYE].mean(0)
    assert abs(left[1] - right[1]) < 1e-6  # Eye line horizontal.
    aligned.append(out)
    warped = faces.warp(image, m)
    assert warped.shape == (144, 144, 3)
  # Same face, same aligned landmarks up to the predictor's own jitter
  # (about 1-2 px with a 10 degree roll: why per-clip alignment exists).
  for other in aligned[1:]:
    assert np.abs(other - aligned[0]).mean() < 2.5


def test_alignment_matrix_geometry():
  rng = np.random.default_rng(0)
  landmarks = rng.uniform(50, 150, (68, 2))
  m = faces.alignment_matrix(landmarks)
  # Pure rotation + isotropic scale + translation.
  a = m[:, :2]
  np.testing.assert_allclose(a @ a.T, np.eye(2) * (a[0] @ a[0]), atol=1e-9)
  five = np.stack([landmarks[clip_format.LEFT_EYE].mean(0),
                   landmarks[clip_format.RIGHT_EYE].mean(0), landmarks[30],
                   landmarks[48], landmarks[54]])
  out = faces.transform_points(five, m)
  lo, hi = out.min(0), out.max(0)
  np.testing.assert_allclose((lo + hi) / 2, [71.5, 71.5], atol=1e-9)
  np.testing.assert_allclose(max(hi - lo) * 2.5, 143, atol=1e-9)
  with pytest.raises(ValueError, match='68, 2'):
    faces.alignment_matrix(np.zeros((5, 2)))


def test_landmark_model_ships_with_package():
  assert os.path.getsize(faces.landmark_model_path()) > 50_000_000
