"""The pictures of a prediction (`mol_jax.visualize`), from predictions built by
hand: flow drawn on a fixed speed scale that the reference sets, landmarks
measured and drawn, and reports written only where they are told."""

import os

import numpy as np
import pytest

from mol_jax import clip_format, visualize
from mol_jax.data import synthetic
from tests.fake_prediction import fake_prediction


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


def test_save_report_writes_only_into_a_relative_out(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  report = visualize.save_report(fake_prediction(), 'predictions/', scale=1)
  assert sorted(os.listdir(tmp_path)) == ['predictions']
  assert sorted(os.listdir(tmp_path / 'predictions')) == [
      'clip_00.gif', 'clip_00.png', 'clip_01.gif', 'clip_01.png', 'predictions.json',
      'probabilities.png']
  assert report['pictures']['clips'][1]['panel'] == 'clip_01.png'


def test_landmarks_off_the_face_are_measured_in_eye_distances():
  face = synthetic.make_subject(0, synthetic.SMALL).landmarks[None]  # [1, 68, 2]
  eyes = float(np.asarray(clip_format.inter_pupil_distance(face))[0])
  assert visualize.landmark_offset(face, face) == 0
  assert visualize.landmark_offset(face + [eyes, 0], face) == pytest.approx(1.0)
  corner = np.zeros_like(face)  # an untrained head: every point near (0, 0)
  assert visualize.landmark_offset(corner, face) > visualize.OFF_FACE_NME


def test_flow_colours_and_landmarks():
  flow = np.zeros((4, 8, 2), np.float32)
  flow[:, 4:, 0] = 2.0  # Right half moves right.
  image = visualize.flow_to_color(flow)
  assert image.shape == (4, 8, 3) and image.dtype == np.uint8
  assert (image[:, :4] == 255).all()  # No motion: white.
  np.testing.assert_array_equal(image[0, 5], [255, 0, 0])  # Right at full speed: red.
  assert visualize.color_wheel(32).shape == (32, 32, 3)
  dots = visualize.draw_landmarks(np.zeros((16, 16), np.uint8), np.array([[3.0, 10.0]]),
                                  (0, 255, 0), radius=1, scale=2)
  assert dots.shape == (32, 32, 3)
  assert dots[20:22, 6:8, 1].min() > 100 and dots[..., 1].sum() < 255 * 12


def _disc_flow(speed: float) -> np.ndarray:
  """[7, 32, 32, 2]: `speed` px to the right inside a disc, still outside it."""
  y, x = np.mgrid[:32, :32]
  inside = (x - 16) ** 2 + (y - 16) ** 2 < 64
  flow = np.zeros((7, 32, 32, 2), np.float32)
  flow[:, inside, 0] = speed
  return flow


def test_comparison_panel_shares_the_references_scale():
  frames = np.random.default_rng(0).uniform(size=(8, 32, 32)).astype(np.float32)
  truth = _disc_flow(2.0)
  # The model's flow (first column) never sets the scale: a model 10x too fast
  # does not wash the truth out.
  wild = visualize.flow_comparison_panel(frames, [('MOL', 10 * truth), ('truth', truth)], [0], scale=1)
  tame = visualize.flow_comparison_panel(frames, [('MOL', truth), ('truth', truth)], [0], scale=1)
  assert wild.shape == tame.shape
  bottom = slice(wild.shape[0] - 32, wild.shape[0])
  truth_tile = slice(2 * (32 + 2), 2 * (32 + 2) + 32)
  np.testing.assert_array_equal(wild[bottom, truth_tile], tame[bottom, truth_tile])
  # Full colour at the truth's 2 px: the disc's centre is saturated red.
  centre = tame[wild.shape[0] - 16, 2 * (32 + 2) + 16]
  assert centre[0] == 255 and centre[1] < 10 and centre[2] < 10
  # Under 1 px of motion, full colour stays at FLOW_FULL_SCALE_PX.
  faint = visualize.flow_comparison_panel(frames, [('MOL', truth), ('truth', truth / 4)], [0], scale=1)
  pixel = faint[faint.shape[0] - 16, 2 * (32 + 2) + 16]
  assert 100 < int(pixel[1]) < 160  # 0.5 px of 1 px: half saturated
