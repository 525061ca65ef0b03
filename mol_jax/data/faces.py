"""Face detection, 68-point landmarks and the official eye-based alignment.

Behaviour matched to the MOL pre-processing (see docs/DATA.md):

* dlib's HOG frontal face detector on the RGB frame (upsample 1 by default),
  first detection kept, then dlib's 68-point shape predictor
  (`shape_predictor_68_face_landmarks.dat`, shipped by the
  `face-recognition-models` package; nothing is downloaded at run time).
* Alignment to 144x144: rotate so that the line between the eye centres is
  horizontal, take the bounding box of five rotated points (both eye centres,
  nose tip, both mouth corners), grow it to 2.5x its longer side and scale it
  to the output; `cv2.warpAffine` (bilinear, border value 128). Landmarks go
  through the same matrix.

Landmarks are (x, y) pixel coordinates, 0-based, in the image they were
detected on; all matrices are 2x3 affine maps from source to aligned pixels.
"""

from __future__ import annotations

import functools
import importlib.util
import os

import cv2
import dlib
import numpy as np

from mol_jax import clip_format

BOX_SCALE = 2.5
BORDER_VALUE = 128
NOSE_TIP = 30
MOUTH_LEFT = 48
MOUTH_RIGHT = 54

_MODEL_FILE = os.path.join('models', 'shape_predictor_68_face_landmarks.dat')


def landmark_model_path() -> str:
  """Path of dlib's 68-point model inside the `face-recognition-models` package.

  The package is located without importing it: its `__init__` imports
  `pkg_resources`, which recent setuptools no longer ship.

  Raises:
    FileNotFoundError: if the package or the model file is missing.
  """
  spec = importlib.util.find_spec('face_recognition_models')
  if spec is None or not spec.submodule_search_locations:
    raise FileNotFoundError(
        'The dlib 68-point landmark model comes with the '
        '`face-recognition-models` package; install it with '
        '`pip install face-recognition-models==0.3.0`.')
  path = os.path.join(spec.submodule_search_locations[0], _MODEL_FILE)
  if not os.path.isfile(path):
    raise FileNotFoundError(
        f'{path} is missing; reinstall `face-recognition-models`.')
  return path


class FaceDetector:
  """dlib HOG face detector plus the 68-point shape predictor.

  The dlib models load lazily (about 2 s for the 100 MB predictor), so an
  instance is cheap to create and can be pickled to worker processes before
  first use.
  """

  def __init__(self, upsample: int = 1, model_path: str | None = None):
    if upsample < 0:
      raise ValueError(f'upsample must be >= 0, got {upsample}.')
    self.upsample = upsample
    self.model_path = model_path
    self._detector = None
    self._predictor = None

  def __getstate__(self):
    return {'upsample': self.upsample, 'model_path': self.model_path}

  def __setstate__(self, state):
    self.__init__(**state)

  def _load(self):
    if self._detector is None:
      self._detector, self._predictor = _dlib_models(
          self.model_path or landmark_model_path())

  def detect(self, rgb: np.ndarray) -> np.ndarray | None:
    """First face box found by the HOG detector.

    Args:
      rgb: [H, W, 3] uint8 RGB image.

    Returns:
      (left, top, right, bottom) int64 array, or None when no face is found.
    """
    self._load()
    detections = self._detector(np.ascontiguousarray(rgb), self.upsample)
    if len(detections) == 0:  # pylint: disable=g-explicit-length-test
      return None
    d = detections[0]
    return np.array([d.left(), d.top(), d.right(), d.bottom()], np.int64)

  def landmarks(self, rgb: np.ndarray, box: np.ndarray) -> np.ndarray:
    """68 landmarks inside `box`.

    Args:
      rgb: [H, W, 3] uint8 RGB image.
      box: (left, top, right, bottom) as returned by `detect`.

    Returns:
      [68, 2] float32 (x, y) pixel coordinates.
    """
    self._load()
    rect = dlib.rectangle(*(int(v) for v in box))
    shape = self._predictor(np.ascontiguousarray(rgb), rect)
    return np.array([(p.x, p.y) for p in shape.parts()], np.float32)


@functools.lru_cache(maxsize=2)
def _dlib_models(model_path: str):
  return dlib.get_frontal_face_detector(), dlib.shape_predictor(model_path)


def _homogeneous(matrix: np.ndarray) -> np.ndarray:
  return np.vstack([matrix, [0.0, 0.0, 1.0]])


def alignment_matrix(landmarks: np.ndarray, size: int = clip_format.STORED_SIZE,
                     box_scale: float = BOX_SCALE) -> np.ndarray:
  """The official eye-based alignment as a 2x3 source->aligned matrix.

  Args:
    landmarks: [68, 2] (x, y) landmarks of the frame (or of a clip, averaged).
    size: output side in pixels.
    box_scale: the five-point box is grown to `box_scale` times its longer side.

  Returns:
    [2, 3] float64 affine matrix for `cv2.warpAffine`.
  """
  landmarks = np.asarray(landmarks, np.float64)
  if landmarks.shape != (clip_format.NUM_LANDMARKS, 2):
    raise ValueError(f'landmarks must be [68, 2], got {landmarks.shape}.')
  left_eye = landmarks[clip_format.LEFT_EYE].mean(axis=0)
  right_eye = landmarks[clip_format.RIGHT_EYE].mean(axis=0)
  dx, dy = right_eye - left_eye
  length = np.hypot(dx, dy)
  if length == 0:
    raise ValueError('Degenerate landmarks: both eye centres coincide.')
  c, s = dx / length, dy / length
  # Rotation about the image origin, as in the official code; the box below
  # is measured after it, so the origin does not matter.
  rotation = np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])
  five = np.stack([left_eye, right_eye, landmarks[NOSE_TIP],
                   landmarks[MOUTH_LEFT], landmarks[MOUTH_RIGHT]])
  rotated = five @ rotation[:2, :2].T
  lo, hi = rotated.min(axis=0), rotated.max(axis=0)
  cx, cy = (lo + hi) / 2
  half = 0.5 * box_scale * max(hi[0] - lo[0], hi[1] - lo[1])
  scale = (size - 1) / 2 / half
  to_box = np.array([[scale, 0.0, scale * (half - cx)],
                     [0.0, scale, scale * (half - cy)],
                     [0.0, 0.0, 1.0]])
  return (to_box @ rotation)[:2]


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
  """Applies a 2x3 affine matrix to [..., 2] (x, y) points."""
  points = np.asarray(points)
  matrix = np.asarray(matrix)
  return (points @ matrix[:, :2].T + matrix[:, 2]).astype(points.dtype)


def invert_affine(matrix: np.ndarray) -> np.ndarray:
  """Inverse of a 2x3 affine matrix."""
  return np.linalg.inv(_homogeneous(np.asarray(matrix, np.float64)))[:2]


def warp(image: np.ndarray, matrix: np.ndarray, size: int = clip_format.STORED_SIZE,
         border_value: int = BORDER_VALUE) -> np.ndarray:
  """`cv2.warpAffine` to a size x size image, bilinear, constant border.

  Args:
    image: [H, W] or [H, W, C] uint8.
    matrix: [2, 3] source->output affine matrix.

  Returns:
    [size, size] or [size, size, C] uint8.
  """
  channels = 1 if image.ndim == 2 else image.shape[2]
  return cv2.warpAffine(image, np.asarray(matrix, np.float64), (size, size),
                        flags=cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_CONSTANT,
                        borderValue=(border_value,) * channels)


def rgb_to_gray(rgb: np.ndarray) -> np.ndarray:
  """ITU-R 601 luma as OpenCV computes it (same as BGR2GRAY on BGR input)."""
  return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
