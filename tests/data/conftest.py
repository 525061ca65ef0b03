"""Fixtures of the face tests (`faces_test`, `preprocess_test`): a real face
photograph that ships with scikit-image, and the dlib detector."""

import cv2
import numpy as np
import pytest
from skimage import data

from mol_jax.data import faces


@pytest.fixture(scope='module')
def face() -> np.ndarray:
  """The astronaut's face, [240, 240, 3] uint8 RGB."""
  return cv2.resize(data.astronaut()[10:310, 80:380], (240, 240),
                    interpolation=cv2.INTER_AREA)


@pytest.fixture(scope='module')
def detector() -> faces.FaceDetector:
  return faces.FaceDetector(upsample=1)
