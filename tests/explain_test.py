"""Region maps (`mol_jax.explain`): the attribution, the scores, the pictures,
predict --explain, and the command's errors."""

import json
import os
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from mol_jax import checkpointing, exit_codes, explain, predict
from mol_jax.data import synthetic
from tests import fake_me, random_weights
from tests.fake_me import NAME
from tests.random_weights import random_model

CLASSES = ['surprise', 'positive', 'negative']


@pytest.fixture(scope='module')
def model():
  return random_model(seed=3)


def _placed_motion_clip(seed=0, box=(40, 60, 70, 90)):
  """A still textured face crop whose frames change inside `box` only
  (y0, y1, x0, x1): a bright blob that moves 1 px per frame."""
  rng = np.random.default_rng(seed)
  base = rng.normal(0, 0.5, (128, 128)).astype(np.float32)
  frames = np.repeat(base[None], 8, axis=0)
  y0, y1, x0, x1 = box
  yy, xx = np.mgrid[y0:y1, x0:x1]
  for t in range(8):
    cy, cx = (y0 + y1) / 2, x0 + 6 + t
    frames[t, y0:y1, x0:x1] += 2.0 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 18.0)
  region = np.zeros((128, 128), np.uint8)
  region[y0:y1, x0:x1] = 1
  return frames[..., None], region


def _logits(model, video):
  graphdef, state = nnx.split(model)
  return np.asarray(nnx.merge(graphdef, state)(jnp.asarray(video), train=False,
                                               with_flow=False)['logits'])


def test_integrated_gradients_live_on_the_changed_pixels(model):
  clip, region = _placed_motion_clip()
  other, _ = _placed_motion_clip(seed=4)
  video = np.stack([clip, other, clip])
  attr = explain.integrated_gradients(model, video, np.asarray([1, 0, 2]), steps=8)
  assert attr.shape == (3, 8, 128, 128)
  # Nothing outside the pixels that change (frame 0 never differs from the still clip).
  assert np.all(attr[:, 0] == 0)
  assert np.all(attr[0][:, region == 0] == 0)
  assert np.abs(attr[0]).sum() > 0
  # Each clip on its own: the same with other clips (and padding) in its batch.
  alone = explain.integrated_gradients(model, video[:1], np.asarray([1]), steps=8,
                                       batch_size=1)
  np.testing.assert_allclose(alone[0], attr[0], rtol=1e-4, atol=1e-6)


def test_map_of_a_placed_motion_peaks_there(model):
  clip, region = _placed_motion_clip(seed=1, box=(80, 100, 20, 50))
  video = clip[None]
  still = np.repeat(video[:, :1], 8, axis=1)
  cls = np.asarray([int(np.argmax((_logits(model, video) - _logits(model, still))[0]))])
  maps, classes = explain.class_map(model, video, cls)
  assert maps.shape == (1, 128, 128) and classes.tolist() == cls.tolist()
  scores = explain.score_maps(maps, region[None])
  assert scores['pointing_game_hit_rate'] == 1.0
  assert scores['mass_in_moving_region'] > 0.95
  assert scores['num_clips'] == 1
  # The frame-difference baseline finds it too: the motion is all there is.
  assert explain.score_maps(explain.frame_difference_map(video), region[None])[
      'pointing_game_hit_rate'] == 1.0


def test_score_maps_against_known_answers():
  region = np.zeros((2, 32, 32), np.uint8)
  region[:, 8:16, 8:16] = 1
  inside = np.zeros((32, 32))
  inside[10, 10] = 1.0
  uniform = np.ones((32, 32))
  scores = explain.score_maps(np.stack([inside, uniform]), region, dilation=0)
  # Clip 1 hits with all its mass inside; clip 2's argmax is pixel (0, 0), outside.
  assert scores['pointing_game_hit_rate'] == 0.5
  assert scores['mass_in_moving_region'] == pytest.approx((1.0 + 64 / 1024) / 2)
  assert scores['moving_region_area_fraction'] == pytest.approx(64 / 1024)
  # Dilation grows the region by that many pixels on each side.
  assert explain.score_maps(uniform[None], region[:1], dilation=2)[
      'moving_region_area_fraction'] == pytest.approx((12 * 12 - 4 * 3) / 1024)
  # A clip whose frames miss the motion has an empty region and is not scored.
  empty = explain.score_maps(inside[None], np.zeros((1, 32, 32)))
  assert empty['num_clips'] == 0


def test_explain_clips_writes_maps_pictures_and_scores(model, tmp_path):
  clip, region = _placed_motion_clip(seed=2)
  video = np.stack([clip, clip[:, ::-1]])
  regions = np.stack([region, region[::-1]])
  result = explain.explain_clips(model, video, ['a', 'b/c'], str(tmp_path), CLASSES, regions)
  assert [c['map_png'] for c in result['clips']] == ['a.png', 'b_c.png']
  for c in result['clips']:
    assert (tmp_path / c['map_png']).stat().st_size > 1000
  with np.load(tmp_path / 'maps.npz') as data:
    assert data['maps'].shape == (2, 128, 128)
  scores = json.loads((tmp_path / 'region_scores.json').read_text())
  assert set(scores) == {'region_dilation_px', 'mol', 'frame_difference'}
  assert scores['mol']['num_clips'] == 2


def test_predict_explain_adds_region_maps(model, tmp_path, capsys):
  model_dir = str(tmp_path / 'model')
  checkpointing.save_model(model_dir, model, metadata={
      'class_names': CLASSES, 'dataset': 'synthetic_me/default_per_clip'})
  frames = synthetic.face_video('positive', 16, frame_size=192)[0]
  path = synthetic.write_video_file(str(tmp_path / 'face.avi'), frames, fps=30)
  out = tmp_path / 'out'
  code = predict.main(['--checkpoint', model_dir, '--input', path, '--out', str(out),
                       '--max_clips', '1', '--batch_size', '1', '--scale', '1', '--quiet',
                       '--no_gif', '--explain'])
  assert code == 0, capsys.readouterr().err
  report = json.loads((out / 'predictions.json').read_text())
  assert report['explain']['clips'][0]['map_png'] == 'clip0.png'
  assert (out / 'explain' / 'clip0.png').stat().st_size > 1000
  with np.load(out / 'explain' / 'maps.npz') as data:
    assert data['maps'].shape == (1, 128, 128)


def test_explain_cli_errors(tmp_path, capsys):
  assert explain.main(['--checkpoint', str(tmp_path / 'none'), '--input', 'x',
                       '--out', str(tmp_path / 'o')]) == 6
  assert 'cannot load the model' in capsys.readouterr().err
  assert explain.main(['--checkpoint', str(tmp_path), '--dataset', 'synthetic_me/small',
                       '--out', str(tmp_path / 'o')]) == 2
  assert '--subject' in capsys.readouterr().err


@pytest.fixture(scope='module')
def model_dir(model, tmp_path_factory):
  path = str(tmp_path_factory.mktemp('explain') / 'model')
  checkpointing.save_model(path, model, metadata={'class_names': CLASSES,
                                                  'dataset': 'synthetic_me/small'})
  return path


def test_explain_without_data_dir_names_the_default_folder_in_one_line(model_dir, tmp_path):
  """Without --data_dir TFDS looks in its default folder: the line names it
  and the build command, not every dataset TFDS knows (460 lines)."""
  empty = tmp_path / 'default_tfds'
  env = dict(os.environ, TFDS_DATA_DIR=str(empty))
  proc = subprocess.run([sys.executable, '-m', 'mol_jax.explain', '--checkpoint', model_dir,
                         '--dataset', 'synthetic_me/small', '--subject', 'sy01', '--out',
                         str(tmp_path / 'out')], capture_output=True, text=True, env=env,
                        timeout=600)
  assert proc.returncode == 3, proc.stderr[-3000:]
  assert proc.stderr.count('\n') == 1, proc.stderr[-3000:]
  assert f'data_dir={empty} (the TFDS default)' in proc.stderr
  assert (f'python -m mol_jax.tfds_build synthetic_me --config=small --data_dir={empty}'
          in proc.stderr)


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  """The small traceable set of `tests/fake_me.py` (subjects a, b, c)."""
  return fake_me.build(tmp_path_factory.mktemp('tfds'))


def test_explain_names_a_subject_the_set_lacks(data_dir, tmp_path, capsys):
  """`explain --subject` of no subject of the set: one line, exit 2, before
  any clip is read or anything written."""
  from mol_jax import explain  # pylint: disable=import-outside-toplevel
  with pytest.raises(explain.SubjectError,
                     match="--subject sy09: fake_me has no subject 'sy09'; its subjects are "
                     'a, b, c'):
    explain.dataset_clips(NAME, data_dir, 'sy09')
  checkpointing.save_model(str(tmp_path / 'model'), random_weights.random_model())
  code = explain.main(['--checkpoint', str(tmp_path / 'model'), '--dataset', NAME,
                       '--data_dir', data_dir, '--subject', 'sy09', '--out',
                       str(tmp_path / 'out')])
  stderr = capsys.readouterr().err
  assert code == exit_codes.USAGE
  assert stderr == ("error: --subject sy09: fake_me has no subject 'sy09'; its subjects are "
                    'a, b, c\n')
  assert not (tmp_path / 'out').exists()
