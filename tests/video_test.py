"""mol_jax.video and the pictures of a prediction, without a model.

Damaged video files are counted honestly, still clips are told from a
micro-expression, and `visualize` draws flow on a fixed speed scale and
writes only where it is told. Predictions here are built by hand (no
network), so each test runs in seconds.
"""

import os

import cv2
import numpy as np
import pytest

from mol_jax import clip_format, inference, video, visualize
from mol_jax.data import faces, preprocess, synthetic

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


# ----------------------------------------------------------------------------
# Predictions built by hand.


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


def _mol_flow_tile(panel, scale=1):
  """The MOL flow tile (third column) of a clip panel's last row."""
  side, gap = 128 * scale, 2
  return panel[-side:, 2 * (side + gap):2 * (side + gap) + side]


def test_tiny_flow_is_not_drawn_at_full_colour():
  """MOL's flow of 0.01 px used to fill the panel with full colour."""
  prediction = fake_prediction(flow_px=0.01)
  assert visualize.flow_scale(prediction, 0) == visualize.FLOW_FULL_SCALE_PX
  tile = _mol_flow_tile(visualize.clip_panel(prediction, 0, scale=1))
  assert tile.min() >= 245, tile.min()  # Nearly white: hardly any motion.
  # One pixel of motion is full colour (rightward: red).
  full = _mol_flow_tile(visualize.clip_panel(fake_prediction(flow_px=1.0), 0, scale=1))
  np.testing.assert_array_equal(full[64, 64], [255, 0, 0])


def test_tvl1_widens_the_scale_for_both_flows():
  prediction = fake_prediction(flow_px=1.0, tvl1_px=4.0)
  assert visualize.flow_scale(prediction, 0) == pytest.approx(4.0)
  # TV-L1's 4 px is full colour, so MOL's 1 px is a quarter saturated.
  pixel = _mol_flow_tile(visualize.clip_panel(prediction, 0, scale=1))[64, 64]
  assert pixel[0] == 255 and 180 < pixel[1] < 205, pixel
  # Below the floor, TV-L1 does not narrow it.
  assert visualize.flow_scale(fake_prediction(tvl1_px=0.2), 0) == 1.0


def test_still_clips_are_left_out_of_the_video():
  prediction = fake_prediction(motion=(0.1, 2.0))
  np.testing.assert_allclose(prediction.video_probabilities, [0.1, 0.2, 0.7])
  assert prediction.label == 'negative' and not prediction.still
  report = prediction.to_json()
  assert [c['still'] for c in report['clips']] == [True, False]
  assert [c['probabilities_meaningful'] for c in report['clips']] == [False, True]
  assert report['video']['pooled_clips'] == [1] and report['video']['still'] is False
  assert any('clip 0' in w and 'is still' in w for w in prediction.warnings)
  every = fake_prediction(motion=(0.1, 0.0))
  assert every.still and every.to_json()['video']['still'] is True
  assert every.to_json()['video']['label'] == every.label
  np.testing.assert_allclose(every.video_probabilities, [0.4, 0.2, 0.4])


def test_save_report_writes_only_into_a_relative_out(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  report = visualize.save_report(fake_prediction(), 'predictions/', scale=1)
  assert sorted(os.listdir(tmp_path)) == ['predictions']
  assert sorted(os.listdir(tmp_path / 'predictions')) == [
      'clip_00.gif', 'clip_00.png', 'clip_01.gif', 'clip_01.png', 'predictions.json',
      'probabilities.png']
  assert report['pictures']['clips'][1]['panel'] == 'clip_01.png'
