"""A video's prediction built by hand (no network), for the tests of what is
made of one: its answer, its pictures, its report."""

import cv2
import numpy as np

from mol_jax import clip_format, inference, video
from mol_jax.data import faces, preprocess, synthetic

NUM = clip_format.NUM_FRAMES


def fake_prediction(motion=(2.0, 2.0), flow_px=0.01, tvl1_px=None, path='face.avi'):
  """A VideoPrediction of len(motion) clips, a uniform rightward flow."""
  c = len(motion)
  rng = np.random.default_rng(0)
  face = synthetic.face_video('positive', 24, frame_size=192)[0][0]
  points = np.clip(rng.uniform(30, 110, (68, 2)), 0, 127).astype(np.float32)
  size = clip_format.STORED_SIZE
  aligned = np.stack([np.stack([cv2.resize(faces.rgb_to_gray(face), (size, size))] * NUM)] * c)
  track = video.FaceTrack(24, np.zeros((24, 68, 2), np.float32), [], [], (192, 192))
  prepared = video.PreparedVideo(
      path, 'video', 30.0, track, np.stack([np.arange(NUM) * 3 + i for i in range(c)]),
      aligned, np.broadcast_to(points + clip_format.CROP_OFFSET, (c, NUM, 68, 2)).copy(),
      np.zeros((c, NUM, 2, 3)), preprocess.PreprocessOptions(), {}, 100.0, 50.0,
      np.asarray(motion, np.float32))
  flow = np.zeros((c, NUM - 1, 128, 128, 2), np.float32)
  flow[..., 0] = flow_px
  tvl1 = None
  if tvl1_px is not None:
    tvl1 = np.zeros_like(flow)
    tvl1[..., 1] = tvl1_px
  probabilities = np.array([[0.7, 0.2, 0.1], [0.1, 0.2, 0.7]] * c)[:c]
  return inference.VideoPrediction(
      prepared, ['surprise', 'positive', 'negative'], np.log(probabilities), probabilities,
      flow, np.broadcast_to(points, (c, NUM - 1, 68, 2)).copy(), tvl1,
      alignment={'used': 'per_clip', 'model': 'per_clip', 'model_source': 'test',
                 'overridden': False})
