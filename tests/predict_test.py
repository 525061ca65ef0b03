"""`python -m mol_jax.predict` on short generated videos of a real face photograph.

One untrained model (random weights, saved with `save_model`) serves every
test; every run samples 2 clips, so the network compiles for one batch shape.
"""

import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from mol_jax import checkpointing, exit_codes, predict, video
from mol_jax.data import preprocess, registration, synthetic
from tests import video_test
from tests.random_weights import random_model

CLASSES = ['surprise', 'positive', 'negative']
FAST = ['--max_clips', '2', '--batch_size', '2', '--scale', '1', '--quiet']


@pytest.fixture(scope='module')
def model_dir(tmp_path_factory):
  path = str(tmp_path_factory.mktemp('ckpt') / 'model')
  checkpointing.save_model(path, random_model(), metadata={
      'class_names': CLASSES, 'dataset': 'synthetic_me/default_per_clip'})
  return path


@pytest.fixture(scope='module')
def frames():
  """24 RGB frames, 192x192, of the astronaut photograph with a smile (AU12)."""
  return synthetic.face_video('positive', 24, frame_size=192)[0]


def _blank(frame, seed=0):
  """A frame without a face: smooth noise."""
  rng = np.random.default_rng(seed)
  noise = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
  return cv2.resize(noise, frame.shape[1::-1], interpolation=cv2.INTER_LINEAR)


def _run(capsys, *args):
  code = predict.main(list(args))
  captured = capsys.readouterr()
  return code, captured.out, captured.err


def test_video_file_gives_predictions_and_pictures(model_dir, frames, tmp_path, capsys):
  path = synthetic.write_video_file(str(tmp_path / 'face.avi'), frames, fps=30)
  out = tmp_path / 'out'
  # A folder an earlier prediction (8 clips, --explain) wrote, with a file of the user's.
  (out / 'explain').mkdir(parents=True)
  for name in ('clip_07.png', 'clip_07.gif', 'explain/clip_07.png', 'notes.txt'):
    (out / name).write_text('earlier')
  code, stdout, stderr = _run(capsys, '--checkpoint', model_dir, '--input', path,
                              '--out', str(out), *FAST)
  assert code == 0, stderr
  assert not any((out / n).exists() for n in ('clip_07.png', 'clip_07.gif', 'explain'))
  assert (out / 'notes.txt').read_text() == 'earlier'
  assert 'face.avi' in stdout
  report = json.loads((out / 'predictions.json').read_text())
  assert report['input'] == path and report['checkpoint'] == model_dir
  assert report['class_names'] == CLASSES
  assert report['class_names_source'] == 'checkpoint metadata'
  assert report['preprocessing']['align'] == 'per_clip'  # From the checkpoint's dataset.
  assert report['alignment'] == {'used': 'per_clip', 'model': 'per_clip', 'overridden': False,
                                 'model_source': 'dataset synthetic_me/default_per_clip'}
  assert stderr == ''  # Nothing to warn about.
  assert report['clips_skipped'] == 0 and report['skipped_clips'] == []
  assert not any(c['still'] for c in report['clips']) and report['video']['still'] is False
  assert report['frames']['total'] == 24 and report['frames']['with_face'] == 24
  assert report['frames']['skipped_without_face'] == 0
  assert len(report['clips']) == report['video']['num_clips'] == 2
  for clip in report['clips']:
    assert len(clip['frame_indices']) == 8
    assert clip['frame_indices'] == sorted(clip['frame_indices'])
    assert set(clip['probabilities']) == set(CLASSES)
    assert sum(clip['probabilities'].values()) == pytest.approx(1.0, abs=1e-4)
    assert clip['label'] == max(clip['probabilities'], key=clip['probabilities'].get)
    assert clip['seconds'][1] == pytest.approx(clip['frame_indices'][-1] / 30, abs=1e-3)
  # 24 frames: s = 3 clips (j = 0, 1, 2), 2 kept evenly spaced: j = 0 and 2.
  assert [c['frame_indices'][0] for c in report['clips']] == [0, 2]
  assert report['clips'][0]['frame_indices'] == list(range(0, 24, 3))
  pooled = report['video']['probabilities']
  assert sum(pooled.values()) == pytest.approx(1.0, abs=1e-4)
  for name in CLASSES:
    assert pooled[name] == pytest.approx(
        np.mean([c['probabilities'][name] for c in report['clips']]), abs=1e-5)
  assert report['video']['label'] == max(pooled, key=pooled.get)
  for name in ('probabilities.png', 'clip_00.png', 'clip_01.png', 'clip_00.gif', 'clip_01.gif'):
    assert (out / name).stat().st_size > 1000, name
  panel = cv2.imread(str(out / 'clip_00.png'))
  assert panel.shape[0] > 7 * 128 and 3 * 128 < panel.shape[1] < 4 * 128  # 7 rows, 3 columns.


def test_face_missing_in_some_frames(model_dir, frames, tmp_path, capsys):
  """A folder of frames where the face is gone in frames 5-9: clips from the others."""
  folder = tmp_path / 'frames'
  folder.mkdir()
  for i, frame in enumerate(frames):
    image = _blank(frame, i) if 5 <= i <= 9 else frame
    cv2.imwrite(str(folder / f'frame{i + 1}.png'), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
  out = tmp_path / 'out'
  code, _, stderr = _run(capsys, '--checkpoint', model_dir, '--input', str(folder),
                         '--out', str(out), '--window', '12', '--hop', '4', '--no_gif',
                         '--align', 'per_frame', *FAST)
  assert code == 0, stderr
  report = json.loads((out / 'predictions.json').read_text())
  assert report['input_kind'] == 'folder'
  assert report['frames']['skipped_without_face'] == 5
  assert report['frames']['skipped_indices'] == [5, 6, 7, 8, 9]
  assert report['frames']['with_face'] == 19
  assert report['preprocessing']['align'] == 'per_frame'
  # Not the model's own alignment: said once, and recorded.
  assert report['alignment']['overridden'] is True and report['alignment']['model'] == 'per_clip'
  assert stderr.count('\n') == 1 and stderr.startswith(
      f"warning: {folder}: alignment 'per_frame' instead of the model's 'per_clip'")
  assert report['preprocessing']['sampling']['window'] == 12
  for clip in report['clips']:
    assert not set(clip['frame_indices']) & set(range(5, 10))
    assert sum(clip['probabilities'].values()) == pytest.approx(1.0, abs=1e-4)
  assert len(report['clips']) == 2
  assert not (out / 'clip_00.gif').exists()


def test_no_face_anywhere(model_dir, frames, tmp_path, capsys):
  path = synthetic.write_video_file(str(tmp_path / 'noise.avi'),
                                    [_blank(f, i) for i, f in enumerate(frames[:10])])
  code, _, stderr = _run(capsys, '--checkpoint', model_dir, '--input', path,
                         '--out', str(tmp_path / 'out'), *FAST)
  assert code == exit_codes.NO_FACE == 4
  assert stderr.count('\n') == 1 and stderr.startswith(f'error: {path}: no face found')


def test_upside_down_face_says_to_rotate(model_dir, frames, tmp_path, capsys):
  path = synthetic.write_video_file(str(tmp_path / 'flipped.avi'),
                                    [f[::-1] for f in frames[:10]])
  code, _, stderr = _run(capsys, '--checkpoint', model_dir, '--input', path,
                         '--out', str(tmp_path / 'out'), *FAST)
  assert code == exit_codes.NO_FACE and 'rotate the video upright' in stderr


def test_frames_of_two_sizes_name_the_odd_file(model_dir, frames, tmp_path, capsys):
  folder = tmp_path / 'frames'
  folder.mkdir()
  for i, frame in enumerate(frames[:10]):
    image = cv2.resize(frame, (160, 160)) if i == 6 else frame
    cv2.imwrite(str(folder / f'img{i:03d}.png'), image[..., ::-1])
  code, _, stderr = _run(capsys, '--checkpoint', model_dir, '--input', str(folder),
                         '--out', str(tmp_path / 'out'), *FAST)
  assert code == exit_codes.NO_INPUT
  assert stderr == (f'error: {folder / "img006.png"}: is 160x160 pixels but img000.png is '
                    '192x192: the frames of one video share one size; put each video in its '
                    'own folder\n')
  assert not (tmp_path / 'out').exists()


def test_too_few_frames_with_a_face(model_dir, frames, tmp_path, capsys):
  clip = [_blank(f, i) if i % 3 == 0 else f for i, f in enumerate(frames[:10])]  # 6 faces.
  path = synthetic.write_video_file(str(tmp_path / 'short.avi'), clip)
  code, _, stderr = _run(capsys, '--checkpoint', model_dir, '--input', path,
                         '--out', str(tmp_path / 'out'), *FAST)
  assert code == exit_codes.TOO_FEW_FRAMES == 5
  assert stderr.startswith(f'error: {path}: 6 frame(s) with a face (of 10)')
  assert stderr.count('\n') == 1


def test_unreadable_and_missing_input(model_dir, tmp_path, capsys):
  broken = tmp_path / 'broken.mp4'
  broken.write_text('not a video')
  code, _, stderr = _run(capsys, '--checkpoint', model_dir, '--input', str(broken),
                         '--out', str(tmp_path / 'out'), *FAST)
  assert code == exit_codes.NO_INPUT == 3
  assert stderr.startswith(f'error: {broken}:') and stderr.count('\n') == 1
  missing = str(tmp_path / 'nope.mp4')
  code, _, stderr = _run(capsys, '--checkpoint', model_dir, '--input', missing,
                         '--out', str(tmp_path / 'out'), *FAST)
  assert code == 3 and stderr == f'error: {missing}: no such file or folder\n'
  empty = tmp_path / 'empty'
  empty.mkdir()
  code, _, stderr = _run(capsys, '--checkpoint', model_dir, '--input', str(empty),
                         '--out', str(tmp_path / 'out'), *FAST)
  assert code == 3 and str(empty) in stderr


def test_bad_checkpoint_and_arguments(tmp_path, frames, capsys):
  path = synthetic.write_video_file(str(tmp_path / 'face.avi'), frames[:8])
  code, _, stderr = _run(capsys, '--checkpoint', str(tmp_path / 'nothing'), '--input', path,
                         '--out', str(tmp_path / 'out'))
  assert code == exit_codes.BAD_WEIGHTS == 6
  assert 'nothing' in stderr and stderr.count('\n') == 1
  code, _, _ = _run(capsys, '--input', path, '--out', str(tmp_path / 'out'))
  assert code == 2  # No weights given.
  code, _, stderr = _run(capsys, '--checkpoint', str(tmp_path / 'nothing'), '--input', path,
                         '--out', str(tmp_path / 'out'), '--batch_size', '0')
  assert code == 2 and stderr == 'error: --batch_size must be at least 1, not 0\n'
  assert not (tmp_path / 'out').exists()


def _damaged_copy(model_dir, tmp_path, name):
  import shutil  # pylint: disable=import-outside-toplevel
  copy = tmp_path / name
  shutil.copytree(model_dir, copy)
  return copy


@pytest.mark.parametrize('damage', ['truncated_data', 'corrupt_metadata'])
def test_damaged_checkpoint_is_one_line_and_exit_6(model_dir, frames, tmp_path, capsys, damage):
  """A checkpoint whose copy stopped half-way, or whose _METADATA is
  garbage: one line naming the checkpoint, exit 6, nothing written."""
  copy = _damaged_copy(model_dir, tmp_path, 'model')
  if damage == 'truncated_data':
    data = max((p for p in copy.rglob('*') if p.is_file()), key=lambda p: p.stat().st_size)
    with open(data, 'r+b') as f:
      f.truncate(data.stat().st_size // 2)
  else:
    metadata = next(p for p in copy.rglob('_METADATA') if p.parent.name == 'model')
    metadata.write_text('{"tree_metadata": ')
  path = synthetic.write_video_file(str(tmp_path / 'face.avi'), frames[:8])
  code, _, stderr = _run(capsys, '--checkpoint', str(copy), '--input', path,
                         '--out', str(tmp_path / 'out'), *FAST)
  assert code == exit_codes.BAD_WEIGHTS
  assert stderr.startswith(f'error: {copy}: the checkpoint is damaged'), stderr
  assert stderr.count('\n') == 1 and 'Traceback' not in stderr
  assert not (tmp_path / 'out').exists()


def test_truncated_checkpoint_is_one_line_in_every_run(model_dir, frames, tmp_path):
  """The command as a user runs it, 10 times: the reads still in flight when
  the restore fails must not add tracebacks after the line (they came on
  about half of the runs, from another thread, at random)."""
  copy = _damaged_copy(model_dir, tmp_path, 'model')
  data = max((p for p in copy.rglob('*') if p.is_file()), key=lambda p: p.stat().st_size)
  with open(data, 'r+b') as f:
    f.truncate(data.stat().st_size // 2)
  path = synthetic.write_video_file(str(tmp_path / 'face.avi'), frames[:8])
  command = [sys.executable, '-m', 'mol_jax.predict', '--checkpoint', str(copy), '--input',
             path, '--out', str(tmp_path / 'out'), *FAST]
  for _ in range(10):
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert proc.returncode == exit_codes.BAD_WEIGHTS, proc.stderr[-2000:]
    assert proc.stderr.startswith(f'error: {copy}: the checkpoint is damaged'), proc.stderr
    assert proc.stderr.count('\n') == 1, proc.stderr[-2000:]


def test_official_weights_npz(frames, tmp_path, capsys):
  from tests import golden  # pylint: disable=import-outside-toplevel
  golden.require()
  weights = str(tmp_path / 'official.npz')
  np.savez(weights, **golden.official_state_dict(3))
  path = synthetic.write_video_file(str(tmp_path / 'face.avi'), frames)
  out = tmp_path / 'out'
  code, _, stderr = _run(capsys, '--official_weights', weights, '--num_classes', '3',
                         '--class_names', 'a,b,c', '--input', path, '--out', str(out),
                         '--no_gif', *FAST)
  assert code == 0, stderr
  report = json.loads((out / 'predictions.json').read_text())
  assert report['class_names'] == ['a', 'b', 'c'] and report['checkpoint'] == weights
  assert report['class_names_source'] == 'argument'
  assert report['preprocessing']['align'] == 'per_frame'  # Official alignment.
  code, _, stderr = _run(capsys, '--official_weights', weights, '--num_classes', '5',
                         '--input', path, '--out', str(out))
  assert code == exit_codes.BAD_WEIGHTS and '5' in stderr and stderr.count('\n') == 1


def _fold_on(monkeypatch, calls_to_fail):
  """Registration folds the face mesh on the given calls of align_frames
  (counted from 1), as it does on some real faces with align=registered."""
  real, calls = preprocess.align_frames, []

  def align(*args, **kwargs):
    calls.append(1)
    if calls_to_fail is None or len(calls) in calls_to_fail:
      raise registration.FoldedWarp('3 of 140 triangles of the face mesh fold over')
    return real(*args, **kwargs)

  monkeypatch.setattr(preprocess, 'align_frames', align)


def test_a_clip_that_cannot_be_aligned_is_skipped(model_dir, frames, tmp_path, capsys,
                                                   monkeypatch):
  """One of 3 clips cannot be registered: the other 2 are predicted."""
  path = synthetic.write_video_file(str(tmp_path / 'face.avi'), frames, fps=30)
  _fold_on(monkeypatch, {2})
  out = tmp_path / 'out'
  code, stdout, stderr = _run(capsys, '--checkpoint', model_dir, '--input', path,
                              '--out', str(out), '--no_gif', *FAST, '--max_clips', '3')
  assert code == 0, stderr
  report = json.loads((out / 'predictions.json').read_text())
  skipped = list(range(1, 24, 3))  # 24 frames: clips j = 0, 1, 2; the second one fails.
  assert report['clips_skipped'] == 1
  assert report['skipped_clips'] == [{'frames': skipped, 'reason': report['skipped_clips'][0][
      'reason']}]
  assert 'registered' in report['skipped_clips'][0]['reason']
  assert [c['frame_indices'][0] for c in report['clips']] == [0, 2]
  assert report['video']['num_clips'] == 2 and '1 skipped' in stdout
  assert stderr.startswith(f'warning: {path}: clip of frames {skipped} skipped: ')
  assert stderr.count('\n') == 1 and '--align' not in stderr


def test_every_clip_skipped_is_one_line_and_exit_4(model_dir, frames, tmp_path, capsys,
                                                   monkeypatch):
  path = synthetic.write_video_file(str(tmp_path / 'face.avi'), frames, fps=30)
  _fold_on(monkeypatch, None)
  code, _, stderr = _run(capsys, '--checkpoint', model_dir, '--input', path,
                         '--out', str(tmp_path / 'out'), *FAST)
  assert code == exit_codes.NO_FACE
  assert stderr.startswith(f'error: {path}: all 2 clip(s) were skipped: the face cannot be '
                           'registered')
  assert stderr.count('\n') == 1 and '--' not in stderr  # No flag to try in its stead.
  assert not (tmp_path / 'out').exists()


def test_damaged_mp4_reports_the_frames_it_could_not_decode(model_dir, frames, tmp_path, capsys):
  """72 frames in the container, junk in the middle: decoding used to stop
  at the first damaged frame and report what it had read as the total."""
  path = video_test.damaged_video(tmp_path / 'damaged.mp4', frames, 'mp4v')
  out = tmp_path / 'out'
  code, _, stderr = _run(capsys, '--checkpoint', model_dir, '--input', path,
                         '--out', str(out), '--no_gif', *FAST)
  assert code == 0, stderr
  counts = json.loads((out / 'predictions.json').read_text())['frames']
  assert counts['total'] == 72
  assert 20 <= counts['decoded'] < 72
  assert counts['skipped_unreadable'] == 72 - counts['decoded']
  assert counts['with_face'] <= counts['decoded']
  assert (f'warning: {path}: {72 - counts["decoded"]} of 72 frames could not be decoded'
          in stderr)


def test_a_still_photo_is_flagged(model_dir, frames, tmp_path, capsys):
  """10 copies of one photograph: the model answers, but it means nothing."""
  folder = video_test._still_folder(tmp_path / 'photo', frames[0])  # pylint: disable=protected-access
  out = tmp_path / 'out'
  code, stdout, stderr = _run(capsys, '--checkpoint', model_dir, '--input', folder,
                              '--out', str(out), '--no_gif', *FAST)
  assert code == 0, stderr
  report = json.loads((out / 'predictions.json').read_text())
  (clip,) = report['clips']
  assert clip['still'] is True and clip['probabilities_meaningful'] is False
  assert clip['motion'] == 0
  assert report['video']['still'] is True and report['video']['label'] in CLASSES
  assert stderr == (f'warning: {folder}: clip 0 (frames {list(range(8))}) is still (motion '
                    f'0.00 < {video.STILL_MOTION} gray levels): its class probabilities are '
                    'not meaningful\n')
  assert 'every clip is still' in stdout


def test_out_that_cannot_be_written_is_refused_first(tmp_path, capsys):
  """Refused before the model is loaded or the input read: neither exists here."""
  afile = tmp_path / 'notes.txt'
  afile.write_text('mine')
  missing = ['--checkpoint', str(tmp_path / 'no_model'), '--input', str(tmp_path / 'none.mp4')]
  code, _, stderr = _run(capsys, *missing, '--out', str(afile))
  assert code == exit_codes.USAGE
  assert stderr == f'error: {afile}: --out is a file, not a folder; name a folder\n'
  code, _, stderr = _run(capsys, *missing, '--out', str(afile / 'sub'))
  assert code == exit_codes.USAGE and stderr.count('\n') == 1
  assert stderr.startswith(f'error: {afile / "sub"}: --out cannot be created')
  assert afile.read_text() == 'mine'


def test_read_only_out_is_refused(tmp_path, capsys, refuse_writes_in):
  locked = tmp_path / 'locked'
  locked.mkdir()
  locked.chmod(0o500)
  if os.geteuid() == 0:
    refuse_writes_in(locked)
  try:
    code, _, stderr = _run(capsys, '--checkpoint', str(tmp_path / 'm'), '--input',
                           str(tmp_path / 'v.mp4'), '--out', str(locked / 'predictions'))
  finally:
    locked.chmod(0o700)
  assert code == exit_codes.USAGE and 'cannot be written' in stderr


def test_training_checkpoint_folder_points_to_the_model(frames, tmp_path, capsys):
  """--checkpoint WORKDIR/folds/<subject>/checkpoints, the folder beside the model."""
  fold = tmp_path / 'workdir' / 'folds' / 'sy01'
  ckpt = checkpointing.TrainCheckpointer(str(fold / 'checkpoints'), save_every_steps=1)
  ckpt.save(1, {'params': np.zeros(3, np.float32)}, None, {})
  ckpt.close()
  path = synthetic.write_video_file(str(tmp_path / 'face.avi'), frames[:8])
  code, _, stderr = _run(capsys, '--checkpoint', str(fold / 'checkpoints'), '--input', path,
                         '--out', str(tmp_path / 'out'))
  assert code == exit_codes.BAD_WEIGHTS
  assert stderr.startswith(f'error: {fold / "checkpoints"}: this is a training checkpoint '
                           'folder; the model is in ../model')
  assert stderr.count('\n') == 1 and not (tmp_path / 'out').exists()
