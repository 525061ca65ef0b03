"""The geometry of a MOL clip, written once for the whole package.

A clip is 8 grayscale frames of a face aligned on its eyes. The records keep
the aligned frames at 144x144; the network sees a 128x128 crop of them (at
random offsets in training, the centred one, offset 8, in evaluation). Flow
is predicted for the 7 consecutive frame pairs, landmarks (68 points, the
iBUG layout that dlib uses) for the second frame of each pair.
"""

from __future__ import annotations

NUM_FRAMES = 8
NUM_PAIRS = NUM_FRAMES - 1
# Side of the aligned frames the records (and predict's prepared clips) hold.
STORED_SIZE = 144
# Side of the crop the network reads.
CROP_SIZE = 128
# Offset of the centred (evaluation) crop in the stored frame.
CROP_OFFSET = (STORED_SIZE - CROP_SIZE) // 2
NUM_LANDMARKS = 68
# iBUG 68-point indices of the two eyes.
LEFT_EYE = slice(36, 42)
RIGHT_EYE = slice(42, 48)


def inter_pupil_distance(landmarks):
  """[..., 68, 2] -> [...]: distance between the two eye centres.

  Operators only, so it serves numpy arrays and traced JAX arrays alike.
  """
  left = landmarks[..., LEFT_EYE, :].mean(-2)
  right = landmarks[..., RIGHT_EYE, :].mean(-2)
  return (((left - right) ** 2).sum(-1)) ** 0.5
