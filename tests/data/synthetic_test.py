"""Tests of the synthetic micro-expression generator and the synthetic_me set."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow_datasets as tfds

from mol_jax.data import faces
from mol_jax.data import preprocess
from mol_jax.data import synthetic
from tests import REPO

TINY = synthetic.SyntheticConfig(num_subjects=2, videos_per_class=1,
                                 min_frames=8, max_frames=12, seed=5)


@pytest.fixture(scope='module')
def tiny_set(tmp_path_factory):
  return synthetic.generate(str(tmp_path_factory.mktemp('syn') / 'set'), TINY)


def test_config_validation():
  with pytest.raises(ValueError, match='min_frames'):
    synthetic.SyntheticConfig(min_frames=5)
  with pytest.raises(ValueError, match='amplitude_px'):
    synthetic.SyntheticConfig(amplitude_px=(2.0, 1.0))


def test_generate_layout_balance_and_atomicity(tiny_set):
  manifest = synthetic.load_manifest(tiny_set)
  assert manifest['classes'] == list(synthetic.CLASSES)
  videos = manifest['videos']
  assert len(videos) == 2 * 3
  for subject in ('sy01', 'sy02'):
    labels = sorted(v['label'] for v in videos if v['subject'] == subject)
    assert labels == sorted(synthetic.CLASSES)  # Balanced per subject.
  for v in videos:
    folder = os.path.join(tiny_set, 'frames', v['label'], v['video'])
    frames = preprocess.list_frames(folder)
    assert len(frames) == v['num_frames'] and 8 <= v['num_frames'] <= 12
    assert v['video'].split('_')[0] == v['subject']  # Official naming rule.
    assert v['label'] not in v['video']  # The name does not leak the class.
    assert os.path.isfile(os.path.join(tiny_set, 'truth', v['video'] + '.npz'))
  parent = os.path.dirname(tiny_set)
  assert not [n for n in os.listdir(parent) if n.startswith('.synthetic_me.')]
  # Same config: reused; another config: refused.
  assert synthetic.generate(tiny_set, TINY) == tiny_set
  with pytest.raises(FileExistsError):
    synthetic.generate(tiny_set, synthetic.SyntheticConfig(seed=6))


def test_true_flow_and_amplitude(tiny_set):
  manifest = synthetic.load_manifest(tiny_set)
  for v in manifest['videos']:
    motion = synthetic.Motion.load(os.path.join(tiny_set, 'truth', v['video'] + '.npz'))
    rng = np.random.default_rng(0)
    points = rng.uniform(40, 150, (200, 2))
    t0, t1 = 0, motion.num_frames - 1
    flow = synthetic.true_flow(motion, t0, t1, points)
    # The same face point: base position before == after.
    np.testing.assert_allclose(points - motion.displacement(t0, points),
                               points + flow - motion.displacement(t1, points + flow),
                               atol=1e-6)
    # Peak action-unit displacement (no head drift / blink) at the aligned
    # scale lies in the configured range.
    au = synthetic.Motion(motion.centers, motion.vectors, motion.sigmas,
                          motion.coeffs, np.zeros_like(motion.head))
    k = len(au.sigmas) - (8 if v['blink_frame'] is not None else 0)
    au.coeffs = au.coeffs.copy()
    au.coeffs[:, k:] = 0
    grid = np.stack(np.meshgrid(np.arange(0, 192, 2), np.arange(0, 192, 2)), -1)
    peak = max(np.linalg.norm(au.displacement(t, grid.astype(float)), axis=-1).max()
               for t in range(motion.num_frames))
    peak_aligned = peak * v['aligned_scale']
    lo, hi = TINY.amplitude_px
    assert lo * 0.8 <= peak_aligned <= hi * 1.001, peak_aligned


@pytest.mark.slow
def test_build_synthetic_me_and_score_flow_and_landmarks(tmp_path):
  """Builds synthetic_me/small with the CLI, reads it back without TF. A
  first build is killed half-way: the second removes what it left."""
  data_dir = str(tmp_path / 'data')
  command = [sys.executable, '-m', 'mol_jax.tfds_build',
             os.path.join('tfds_builders', 'synthetic_me'), '--config=small',
             f'--data_dir={data_dir}', '--num_workers=2']
  config_dir = tmp_path / 'data' / 'synthetic_me' / 'small'
  # Its own process group, so that its pre-processing workers die with it.
  killed = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
  deadline = time.time() + 600
  while (not list(config_dir.glob('incomplete.*')) and killed.poll() is None
         and time.time() < deadline):
    time.sleep(0.1)
  assert killed.poll() is None, 'the build ended before it could be killed'
  os.killpg(killed.pid, signal.SIGKILL)
  killed.wait()
  left = list(config_dir.glob('incomplete.*'))
  assert left and not (config_dir / '1.5.0').exists()
  build = subprocess.run(command, check=True, cwd=REPO, capture_output=True, text=True)
  assert not any(p.exists() for p in left), 'a killed build left its folder behind'
  # What a user reads: the summary, not TFDS's 60-line DatasetInfo or Beam's
  # notes on its optional dependencies.
  assert 'synthetic_me/small: 6 clip(s) built' in build.stdout + build.stderr
  assert 'DatasetInfo(' not in build.stdout, build.stdout[-3000:]
  assert 'apache_beam' not in build.stderr and 'apitools' not in build.stderr, (
      build.stderr[-3000:])
  builder = tfds.builder_from_directory(
      os.path.join(data_dir, 'synthetic_me', 'small', '1.5.0'))
  assert sorted(builder.info.splits) == ['sy01', 'sy02']
  raw = [os.path.join(data_dir, 'downloads', n)
         for n in os.listdir(os.path.join(data_dir, 'downloads'))
         if n.startswith('synthetic_me_raw_')][0]
  manifest = {v['video']: v for v in synthetic.load_manifest(raw)['videos']}
  subjects = {i: synthetic.make_subject(i, synthetic.SMALL) for i in range(2)}
  detector = faces.FaceDetector()
  epes, face_epes, landmark_errors = [], [], []
  for split in ('sy01', 'sy02'):
    source = tfds.data_source('synthetic_me/small', split=split, data_dir=data_dir)
    assert len(source) == 3
    for i in range(len(source)):
      ex = source[i]
      video_id = ex['video_id'].decode()
      info = manifest[video_id]
      assert ex['subject'].decode() == split == info['subject']
      assert ex['label'] == synthetic.CLASSES.index(info['label'])
      frames = preprocess.list_frames(os.path.join(raw, 'frames', info['label'], video_id))
      paths = [frames[j] for j in ex['frame_indices']]
      aligned = preprocess.align_clip(preprocess.read_clip(paths), detector)
      np.testing.assert_array_equal(ex['video'][..., 0], aligned.gray)
      np.testing.assert_allclose(ex['landmarks'], aligned.landmarks, atol=1e-4)
      # Landmarks lie on the face: the subject's landmarks carried by the
      # true motion to each frame, in the aligned frame.
      motion = synthetic.Motion.load(os.path.join(raw, 'truth', video_id + '.npz'))
      subject = subjects[int(split[2:]) - 1]
      for k, f in enumerate(ex['frame_indices']):
        true = faces.transform_points(
            synthetic.position_at(motion, int(f), subject.landmarks),
            aligned.matrices[k])
        landmark_errors.append(np.linalg.norm(ex['landmarks'][k] - true, axis=-1).mean())
        # The record's own truth is the same motion.
        np.testing.assert_allclose(ex['true_landmarks'][k], true, atol=1e-3)
      truth = synthetic.stored_true_flow(motion, ex['frame_indices'], aligned.geometry)
      np.testing.assert_allclose(ex['true_flow'].astype(np.float32), truth, atol=5e-3)
      epe = np.linalg.norm(ex['flow'].astype(np.float32) - truth, axis=-1)
      epes.append(epe.mean())
      lo = ex['landmarks'].min((0, 1)).astype(int)
      hi = ex['landmarks'].max((0, 1)).astype(int)
      face_epes.append(epe[:, lo[1]:hi[1], lo[0]:hi[0]].mean())
  report = {'epe_px': float(np.mean(epes)), 'face_epe_px': float(np.mean(face_epes)),
            'landmark_error_px': float(np.mean(landmark_errors))}
  print('synthetic_me/small:', json.dumps(report))
  assert report['landmark_error_px'] < 3.0
  assert report['epe_px'] < 0.3 and report['face_epe_px'] < 0.3
