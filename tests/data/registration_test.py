"""Tests of mol_jax.data.registration and the 'registered' alignment."""

import cv2
import numpy as np
import pytest
from skimage import data

from mol_jax import clip_format
from mol_jax.data import faces
from mol_jax.data import preprocess
from mol_jax.data import registration

SIZE = clip_format.STORED_SIZE


@pytest.fixture(scope='module')
def reference():
  return registration.reference_shape()


@pytest.fixture(scope='module')
def face():
  """The astronaut's face, [240, 240, 3] uint8 RGB."""
  return cv2.resize(data.astronaut()[10:310, 80:380], (240, 240),
                    interpolation=cv2.INTER_AREA)


def _grid():
  return np.stack(np.meshgrid(np.arange(SIZE), np.arange(SIZE)), -1).astype(np.float64)


def test_reference_shape_is_an_aligned_face(reference):
  assert reference.shape == (68, 2)
  # Aligned as every clip is: eye line horizontal, five-point box centred.
  left, right = reference[clip_format.LEFT_EYE].mean(0), reference[clip_format.RIGHT_EYE].mean(0)
  assert abs(left[1] - right[1]) < 1e-6 and left[0] < right[0]
  assert reference[clip_format.LEFT_EYE, 1].max() < reference[48:68, 1].min()
  np.testing.assert_allclose(faces.alignment_matrix(reference),
                             [[1, 0, 0], [0, 1, 0]], atol=1e-9)


def test_the_reference_itself_is_the_identity(reference):
  warp = registration.Registration(reference)
  np.testing.assert_allclose(warp.sample_points, _grid(), atol=1e-9)
  np.testing.assert_allclose(warp.points(reference), reference, atol=1e-9)


def test_onset_landmarks_land_on_the_reference_and_motion_is_kept(reference):
  # A face 8 % smaller than the reference, 3 px lower: another person's
  # proportions after the eye-based alignment.
  centre = np.array([71.5, 71.5])
  onset = centre + 0.92 * (reference - centre) + [0.0, 3.0]
  warp = registration.Registration(onset)
  inner = registration.MESH_POINTS
  np.testing.assert_allclose(warp.points(onset)[inner], reference[inner], atol=1e-9)
  # Inside the face the warp is this similarity, so a 1 px lip-corner
  # motion becomes 1 / 0.92 px in the registered frame.
  moved = onset[48] + [0.0, -1.0]
  np.testing.assert_allclose(warp.points(moved) - reference[48], [0.0, -1 / 0.92], atol=1e-6)
  # Output pixels sample the aligned frame where `points` sends them from.
  rng = np.random.default_rng(0)
  q = rng.uniform(30, 114, (50, 2))
  sampled = warp.sample_points[q[:, 1].astype(int), q[:, 0].astype(int)]
  np.testing.assert_allclose(warp.points(sampled), q.astype(int), atol=1e-6)
  # The frame border stays in place.
  np.testing.assert_allclose(warp.sample_points[0], _grid()[0], atol=1e-9)
  np.testing.assert_allclose(warp.sample_points[:, -1], _grid()[:, -1], atol=1e-9)


def _jacobian_determinants(sample_points):
  """Determinant of the warp's Jacobian at every pixel (finite differences)."""
  dx = np.diff(sample_points, axis=1)[:-1]
  dy = np.diff(sample_points, axis=0)[:, :-1]
  return dx[..., 0] * dy[..., 1] - dx[..., 1] * dy[..., 0]


def test_a_warp_never_folds_it_weakens_towards_the_similarity(reference):
  # Landmarks no exact warp can follow without turning the face inside out.
  upside_down = reference.copy()
  upside_down[:, 1] = SIZE - 1 - upside_down[:, 1]
  crossed = reference.copy()
  crossed[[17, 26]] = crossed[[26, 17]]  # The outer brow ends swapped.
  for landmarks in (upside_down, crossed):
    warp = registration.Registration(landmarks)
    assert 0.0 <= warp.strength < 1.0
    assert (_jacobian_determinants(warp.sample_points) > 0).all()
  assert registration.Registration(reference).strength == 1.0
  with pytest.raises(registration.FoldedWarp, match='finite'):
    registration.Registration(np.full((68, 2), np.nan))
  with pytest.raises(ValueError, match='68, 2'):
    registration.Registration(reference[:5])


def _aligned_landmarks(image):
  detector = faces.FaceDetector(upsample=1)
  raw = detector.landmarks(image, detector.detect(image)).astype(np.float64)
  return faces.transform_points(raw, faces.alignment_matrix(raw))


def test_real_faces_and_their_expressions_register_exactly():
  # Grace Hopper's portrait (shipped with matplotlib) folded the earlier
  # inner-face mesh: her closed mouth against the reference's open smile.
  import matplotlib  # pylint: disable=g-import-not-at-top
  path = matplotlib.get_data_path() + '/sample_data/grace_hopper.jpg'
  portrait = cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB)
  aligned = _aligned_landmarks(portrait)
  from mol_jax.tools import registration_check  # pylint: disable=g-import-not-at-top
  assert registration_check.exact_warp_folds(aligned, np.arange(17, 68))
  cases = dict(registration_check.expressions(aligned), photo=aligned)
  for name, landmarks in cases.items():
    warp = registration.Registration(landmarks)
    assert warp.strength == 1.0, name
    inner = registration.MESH_POINTS
    np.testing.assert_allclose(warp.points(landmarks[inner]),
                               registration.reference_shape()[inner], atol=1e-6)
    assert (_jacobian_determinants(warp.sample_points) > 0).all(), name


class _ShapeDetector:
  """A detector that finds a face everywhere, with given landmarks."""

  def __init__(self, landmarks):
    self._landmarks = landmarks

  def detect(self, image):
    return np.array([0, 0, image.shape[1], image.shape[0]])

  def landmarks(self, image, box):
    return self._landmarks


def test_a_clip_that_cannot_be_registered_is_skipped_with_its_reason(face, reference):
  options = preprocess.PreprocessOptions(align='registered')
  broken = np.full_like(reference, np.nan)
  with pytest.raises(preprocess.SkipClip) as info:
    preprocess.align_clip([face] * 8, _ShapeDetector(broken), options, 'videos/v1')
  assert info.value.reason == preprocess.UNREGISTRABLE_FACE
  assert 'videos/v1' in str(info.value) and 'per_clip' in str(info.value)


def test_two_face_shapes_coincide_after_registration(face):
  # The same face with a 12 % longer lower half: after the eye-based
  # alignment its mouth sits lower; registration puts it back.
  detector = faces.FaceDetector(upsample=1)
  h = face.shape[0]
  rows = np.arange(h, dtype=np.float32)
  split = 0.55 * h
  source_rows = np.where(rows < split, rows, split + (rows - split) / 1.12)
  map_y = np.repeat(source_rows[:, None], face.shape[1], 1)
  map_x = np.repeat(np.arange(face.shape[1], dtype=np.float32)[None], h, 0)
  longer = cv2.remap(face, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)

  def aligned(image, align):
    lm = detector.landmarks(image, detector.detect(image)).astype(np.float64)
    clip = preprocess.align_frames([image] * 8, np.repeat(lm[None], 8, 0),
                                   preprocess.PreprocessOptions(align=align))
    return clip.gray[0].astype(np.float32), clip.landmarks[0]

  def mouth_gap(align):
    (a, la), (b, lb) = aligned(face, align), aligned(longer, align)
    return np.abs(la[48:60] - lb[48:60]).max(), np.abs(a - b)[90:120, 40:104].mean()

  per_clip_gap, per_clip_pixels = mouth_gap('per_clip')
  registered_gap, registered_pixels = mouth_gap('registered')
  assert per_clip_gap > 2
  assert registered_gap < 0.01
  # 4.6 against 7.7 grey levels: the outer lips are matched exactly, the
  # inner lips (not mesh points, so that a blink or an open mouth cannot fold
  # the warp) follow the warp only.
  assert registered_pixels < 0.7 * per_clip_pixels


def test_registration_ignores_the_expression(face):
  # As for per-clip alignment: the warp comes from the onset frame only, so
  # landmarks that move after it change neither the warp nor the pixels.
  detector = faces.FaceDetector(upsample=1)
  onset = detector.landmarks(face, detector.detect(face)).astype(np.float64)
  raw = np.repeat(onset[None], 8, axis=0)
  for t in range(1, 8):
    raw[t, 48] += np.array([-3.0, -3.0]) * t / 7
    raw[t, 54] += np.array([3.0, -3.0]) * t / 7
  options = preprocess.PreprocessOptions(align='registered')
  smiling = preprocess.align_frames([face] * 8, raw, options)
  neutral = preprocess.align_frames([face] * 8, np.repeat(onset[None], 8, 0), options)
  np.testing.assert_array_equal(smiling.gray, neutral.gray)
  # The moving corners are carried into the registered frame.
  lift = smiling.landmarks[7, 54] - smiling.landmarks[0, 54]
  assert lift[0] > 1.5 and lift[1] < -1.5
