"""Tests of mol_jax.data.preprocess on a real face photograph."""

import os
import pickle

import cv2
import numpy as np
import pytest

from mol_jax.data import faces
from mol_jax.data import preprocess
from tests.data.moved_face import shift as _shift


def _write_video(folder, frames, first=1, name='img{}.jpg'):
  os.makedirs(folder, exist_ok=True)
  for i, frame in enumerate(frames):
    cv2.imwrite(os.path.join(folder, name.format(first + i)),
                cv2.cvtColor(frame, cv2.COLOR_RGB2BGR),
                [cv2.IMWRITE_JPEG_QUALITY, 95])
  return folder


def test_frame_number_and_numeric_order(tmp_path):
  assert preprocess.frame_number('img46.jpg') == 46
  assert preprocess.frame_number('006_1_2_0123.jpg') == 123
  for name in ('img10.jpg', 'img2.jpg', 'img1.jpg', 'notes.txt', 'img100.png'):
    (tmp_path / name).write_bytes(b'')
  names = [os.path.basename(p) for p in preprocess.list_frames(tmp_path)]
  assert names == ['img1.jpg', 'img2.jpg', 'img10.jpg', 'img100.png']
  with pytest.raises(ValueError, match='no number'):
    preprocess.frame_number('cover.jpg')


def test_empty_and_missing_folder(tmp_path):
  with pytest.raises(preprocess.SkipClip) as e:
    preprocess.list_frames(tmp_path)
  assert e.value.reason == preprocess.EMPTY_FOLDER
  with pytest.raises(preprocess.SkipClip) as e:
    preprocess.plan_video(str(tmp_path / 'nope'), 'x')
  assert e.value.reason == preprocess.MISSING_FOLDER


def test_clip_indices_match_official_sampling():
  rows = preprocess.clip_indices(17)
  np.testing.assert_array_equal(rows, [[0, 2, 4, 6, 8, 10, 12, 14],
                                       [1, 3, 5, 7, 9, 11, 13, 15]])
  assert preprocess.clip_indices(7).shape == (0, 8)
  assert preprocess.clip_indices(8).tolist() == [list(range(8))]
  rows = preprocess.clip_indices(60)  # s = 7.
  assert rows.shape == (7, 8)
  assert sorted(rows.ravel().tolist()) == list(range(56))  # No frame reused.
  np.testing.assert_array_equal(preprocess.clip_indices(60, max_clips=3)[:, 0],
                                [0, 3, 6])


def test_fewer_than_8_frames_is_skipped(tmp_path, face):
  folder = _write_video(str(tmp_path / 'v'), [face] * 7)
  with pytest.raises(preprocess.SkipClip) as e:
    preprocess.plan_video(folder, 'v')
  assert e.value.reason == preprocess.TOO_FEW_FRAMES
  assert folder in str(e.value)


def test_frame_range_keeps_the_numbered_frames(tmp_path):
  """A micro-expression inside a longer video (CAS(ME)^3): only the frames
  numbered onset..offset, sampled as a clip of their own."""
  for n in range(1, 31):
    (tmp_path / f'{n}.jpg').write_bytes(b'')
  (job,) = preprocess.plan_video(str(tmp_path), 'v', onset=5, offset=14)
  assert [preprocess.frame_number(p) for p in job.paths] == list(range(5, 13))
  assert job.frame_indices == tuple(range(8))  # Within the range.
  assert len(preprocess.plan_video(str(tmp_path), 'v', onset=0, offset=16)) == 2
  assert len(preprocess.plan_video(str(tmp_path), 'v', onset=None, offset=None)) == 3
  assert len(preprocess.plan_video(str(tmp_path), 'v', onset=15)) == 2  # 15..30.
  with pytest.raises(preprocess.SkipClip) as e:
    preprocess.plan_video(str(tmp_path), 'v', onset=26, offset=40)
  assert e.value.reason == preprocess.TOO_FEW_FRAMES
  assert '5 frame(s) numbered in [26, 40]' in e.value.detail
  with pytest.raises(preprocess.SkipClip) as e:
    preprocess.plan_video(str(tmp_path), 'v', onset=20, offset=0)
  assert e.value.reason == preprocess.INVALID_RANGE
  assert 'onset 20 is after offset 0' in e.value.detail


def test_short_videos_are_stretched_when_asked(tmp_path):
  """A 5-frame micro-expression (30 fps sets): one clip of its frames at 8
  evenly spaced times, first and last included; 1 frame stays too few."""
  for n in range(1, 31):
    (tmp_path / f'{n}.jpg').write_bytes(b'')
  stretch = preprocess.PreprocessOptions(stretch_short_videos=True)
  (job,) = preprocess.plan_video(str(tmp_path), 'v', stretch, onset=26, offset=30)
  assert [preprocess.frame_number(p) for p in job.paths] == [26, 27, 27, 28, 28, 29, 29, 30]
  assert job.frame_indices == (0, 1, 1, 2, 2, 3, 3, 4)
  # Long enough: the official clips, unchanged by the option.
  assert (preprocess.plan_video(str(tmp_path), 'v', stretch, onset=5, offset=14)
          == preprocess.plan_video(str(tmp_path), 'v', onset=5, offset=14))
  with pytest.raises(preprocess.SkipClip) as e:
    preprocess.plan_video(str(tmp_path), 'v', stretch, onset=30, offset=30)
  assert e.value.reason == preprocess.TOO_FEW_FRAMES and 'needs 2' in e.value.detail


@pytest.mark.parametrize('align', preprocess.ALIGN_MODES)
def test_process_clip_shapes_landmarks_and_flow(tmp_path, face, detector, align):
  # The face moves right by 0.5 px per frame in the raw video.
  frames = [_shift(face, 0.5 * t) for t in range(8)]
  folder = _write_video(str(tmp_path / 'v'), frames, first=9)
  (job,) = preprocess.plan_video(folder, 'v')
  clip = preprocess.process_clip(job.paths, job.frame_indices, detector,
                                 preprocess.PreprocessOptions(align=align))
  assert clip.video.shape == (8, 144, 144, 1) and clip.video.dtype == np.uint8
  assert clip.flow.shape == (7, 144, 144, 2) and clip.flow.dtype == np.float16
  assert clip.landmarks.shape == (8, 68, 2) and clip.landmarks.dtype == np.float32
  assert clip.frame_indices.tolist() == list(range(8))
  assert set(clip.timings) == {'read', 'detect', 'align', 'flow'}
  # Landmarks inside the aligned frame, eyes in the upper half.
  assert clip.landmarks.min() > -5 and clip.landmarks.max() < 149
  assert clip.landmarks[:, 36:48, 1].max() < 72
  # The border fill is 128 outside the warped photo: the aligned crop is
  # mostly face, so the mean is not the border value.
  assert abs(float(clip.video.mean()) - 128) > 1
  flow_x = clip.flow[..., 30:114, 30:114, 0].astype(np.float32)
  scale = float(np.linalg.norm(clip.matrices[0, :, 0]))
  if align != 'per_frame':
    # One transform (registration of this face onto the reference shape, a
    # copy of it, is close to the identity): the raw 0.5 px/frame motion
    # appears scaled, positive x.
    assert abs(np.median(flow_x) - 0.5 * scale) < 0.15
  else:
    # Each frame re-centred on its own landmarks: the motion is cancelled up
    # to landmark jitter.
    assert abs(np.median(flow_x)) < 0.5


def test_per_clip_alignment_ignores_the_expression(face, detector):
  # A lip-corner puller after the onset frame: the mouth corners (points 48
  # and 54, two of the five that set the alignment box) move out and up by
  # up to 3 px. The mean of the 8 frames' landmarks would change the box and
  # so the scale and position of the whole face in every frame: the
  # expression's class leaking into the clip's static geometry.
  onset = detector.landmarks(face, detector.detect(face)).astype(np.float64)
  raw = np.repeat(onset[None], 8, axis=0)
  for t in range(1, 8):
    raw[t, 48] += np.array([-3.0, -3.0]) * t / 7
    raw[t, 54] += np.array([3.0, -3.0]) * t / 7
  still = np.repeat(onset[None], 8, axis=0)
  options = preprocess.PreprocessOptions(align='per_clip')
  smiling = preprocess.align_frames([face] * 8, raw, options)
  neutral = preprocess.align_frames([face] * 8, still, options)
  expected = faces.alignment_matrix(onset)
  np.testing.assert_allclose(smiling.matrices, np.repeat(expected[None], 8, 0))
  np.testing.assert_array_equal(smiling.gray, neutral.gray)
  # The clip's mean landmarks would have rescaled the face by several %.
  mean_matrix = faces.alignment_matrix(raw.mean(axis=0))
  zoom = np.linalg.norm(mean_matrix[:, 0]) / np.linalg.norm(expected[:, 0])
  assert abs(zoom - 1) > 0.03


def test_reuses_box_when_face_missing(tmp_path, face, detector):
  frames = [face.copy() for _ in range(8)]
  frames[3] = np.full_like(face, 90)  # A frame with no face.
  folder = _write_video(str(tmp_path / 'v'), frames)
  (job,) = preprocess.plan_video(folder, 'v')
  clip = preprocess.process_clip(job.paths, job.frame_indices, detector)
  assert clip.reused_boxes == 1
  with pytest.raises(preprocess.SkipClip) as e:
    preprocess.process_clip(job.paths, job.frame_indices, detector,
                            preprocess.PreprocessOptions(reuse_box=False))
  assert e.value.reason == preprocess.NO_FACE


def test_no_face_and_corrupt_jpeg_are_skipped(tmp_path, face, detector):
  gradient = np.tile(np.linspace(0, 255, 240, dtype=np.uint8)[None, :, None],
                     (240, 1, 3))
  no_face = _write_video(str(tmp_path / 'noface'), [gradient] * 8)
  corrupt = _write_video(str(tmp_path / 'corrupt'), [face] * 16)
  bad = os.path.join(corrupt, 'img3.jpg')
  with open(bad, 'rb') as f:
    head = f.read(2000)
  with open(bad, 'wb') as f:
    f.write(head)  # Truncated JPEG: OpenCV would only warn.
  jobs = preprocess.plan_video(no_face, 'noface') + preprocess.plan_video(corrupt, 'corrupt')
  results = preprocess.run_jobs(jobs, num_workers=0)
  reasons = [r.reason if isinstance(r, preprocess.SkipClip) else 'ok'
             for _, r in results]
  # Clip 0 of 'corrupt' holds frames 0, 2, 4, ... (img3 is index 2); clip 1
  # (img2, img4, ...) is intact.
  assert reasons == [preprocess.NO_FACE, preprocess.UNREADABLE_FRAME, 'ok']
  assert bad in results[1][1].path
  skip = pickle.loads(pickle.dumps(results[1][1]))
  assert (skip.reason, skip.path) == (results[1][1].reason, results[1][1].path)
  summary = preprocess.SkipSummary('test')
  for _, r in results:
    if isinstance(r, preprocess.SkipClip):
      summary.skip(r.reason, r.path, r.detail)
  assert summary.counts == {preprocess.NO_FACE: 1, preprocess.UNREADABLE_FRAME: 1}
  assert 'unreadable_frame: 1' in summary.report()


def test_process_pool_matches_in_process(tmp_path, face):
  frames = [_shift(face, 0.3 * t) for t in range(16)]
  folder = _write_video(str(tmp_path / 'v'), frames)
  jobs = preprocess.plan_video(folder, 'v')
  here = preprocess.run_jobs(jobs, num_workers=0)
  pool = preprocess.run_jobs(jobs, num_workers=2)
  assert [j.key for j, _ in pool] == [j.key for j in jobs]
  for (_, a), (_, b) in zip(here, pool):
    np.testing.assert_array_equal(a.video, b.video)
    np.testing.assert_array_equal(a.flow, b.flow)
    np.testing.assert_array_equal(a.landmarks, b.landmarks)
