"""mol_jax.video without a model: damaged video files are counted honestly,
clips are sampled as the builders sample them, and still clips are told
from a micro-expression. Each test runs in seconds."""

import cv2
import numpy as np
import pytest

from mol_jax import clip_format, video
from mol_jax.data import faces, synthetic

NUM = clip_format.NUM_FRAMES


@pytest.fixture(scope='module')
def frames():
  """24 RGB frames, 192x192, of the astronaut photograph with a smile (AU12)."""
  return synthetic.face_video('positive', 24, frame_size=192)[0]


@pytest.fixture(scope='module')
def detector():
  return faces.FaceDetector(1)


def damaged_video(path, frames, fourcc):
  """72 frames written by cv2.VideoWriter, then junk written over 30% of the
  file's middle bytes, as a copy that broke off and was patched with garbage."""
  writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 30.0,
                           frames[0].shape[1::-1])
  for i in range(72):
    writer.write(np.ascontiguousarray(frames[i % len(frames)][..., ::-1]))
  writer.release()
  data = bytearray(path.read_bytes())
  start, end = int(len(data) * 0.28), int(len(data) * 0.58)
  data[start:end] = np.random.default_rng(0).integers(0, 256, end - start,
                                                      dtype=np.uint8).tobytes()
  path.write_bytes(bytes(data))
  return str(path)


@pytest.mark.parametrize('name,fourcc', [('damaged.avi', 'MJPG'), ('damaged.mp4', 'mp4v')])
def test_damaged_video_counts_every_frame_of_the_container(frames, tmp_path, name, fourcc):
  path = damaged_video(tmp_path / name, frames, fourcc)
  capture = cv2.VideoCapture(path)
  assert capture.get(cv2.CAP_PROP_FRAME_COUNT) == 72  # The container still lists 72.
  capture.release()
  source = video.FrameSource(path)
  assert source.container_frames == 72
  decoded = dict(source)
  assert sorted(decoded) == list(range(72))  # Every listed frame is counted...
  unreadable = [i for i, f in decoded.items() if f is None]
  assert 0 < len(unreadable) < 72  # ...and the damaged ones are said to be.
  readable = [i for i, f in decoded.items() if f is not None]
  assert sorted(source.read(readable[-2:])) == readable[-2:]


def test_max_frames_bounds_the_count(frames, tmp_path):
  path = damaged_video(tmp_path / 'damaged.mp4', frames, 'mp4v')
  assert len(list(video.FrameSource(path, max_frames=10))) == 10


def _still_folder(folder, photo, copies=10):
  folder.mkdir()
  for i in range(copies):
    cv2.imwrite(str(folder / f'img{i:03d}.jpg'), photo[..., ::-1])
  return str(folder)


@pytest.mark.parametrize('align', ['per_frame', 'per_clip'])
def test_still_and_moving_clips(frames, detector, tmp_path, align):
  """A photograph repeated, and the same photograph as an mp4 (codec noise
  only), are still; the synthetic micro-expression is not."""
  still = video.prepare_video(_still_folder(tmp_path / 'still', frames[0]), align=align,
                              detector=detector)
  assert still.num_clips == 1 and still.motion[0] == 0 and still.still.all()
  noisy = synthetic.write_video_file(str(tmp_path / 'still.mp4'), np.stack([frames[0]] * 16))
  coded = video.prepare_video(noisy, align=align, detector=detector)
  assert (coded.motion > 0).all() and coded.still.all()
  moving = video.prepare_video(synthetic.write_video_file(str(tmp_path / 'face.avi'), frames),
                               align=align, detector=detector, max_clips=0)
  assert not moving.still.any(), moving.motion
  assert moving.motion.min() > 2 * coded.motion.max()


def test_clip_motion_ignores_pixel_noise_but_not_a_moving_edge():
  rng = np.random.default_rng(0)
  base = np.full((NUM, 144, 144), 120.0)
  noise = np.clip(base + rng.normal(0, 4, base.shape), 0, 255).astype(np.uint8)
  assert video.clip_motion(noise) < video.STILL_MOTION
  edge = base.copy()
  for t in range(NUM):
    edge[t, 40:100, 40 + 2 * t:80 + 2 * t] = 200  # A bright patch moving 2 px a frame.
  assert video.clip_motion(edge.astype(np.uint8)) > video.STILL_MOTION


def test_mp4_decodes_like_the_frames(frames, tmp_path):
  path = synthetic.write_video_file(str(tmp_path / 'face.mp4'), frames[:16], fps=25)
  source = video.FrameSource(path)
  assert source.kind == 'video' and source.fps == pytest.approx(25)
  decoded = dict(source)
  assert sorted(decoded) == list(range(16))
  # Lossy codec: close to the frames, not equal.
  assert np.abs(decoded[3].astype(int) - frames[3].astype(int)).mean() < 8
  assert sorted(source.read([2, 9])) == [2, 9]


def test_sample_clips():
  # Whole video: the builders' rule, s = n // 8 clips, at most max_clips.
  np.testing.assert_array_equal(video.sample_clips(17, max_clips=None),
                                [list(range(0, 16, 2)), list(range(1, 16, 2))])
  assert video.sample_clips(60, max_clips=3)[:, 0].tolist() == [0, 3, 6]
  # Windows of 16 frames every 8, the last one ending on the last frame.
  rows = video.sample_clips(40, window=16, hop=8, max_clips=0)
  assert rows[:, 0].tolist() == [0, 8, 16, 24]
  assert rows[0].tolist() == list(range(0, 16, 2))
  assert video.sample_clips(37, window=16, hop=8, max_clips=0)[:, 0].tolist() == [
      0, 8, 16, 21]
  assert video.sample_clips(10, window=32)[0].tolist() == list(range(8))
  with pytest.raises(ValueError):
    video.sample_clips(7)
  with pytest.raises(ValueError):
    video.sample_clips(20, window=5)
