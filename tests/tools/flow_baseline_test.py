"""The hand-made features of the flow baselines (`mol_jax.tools.flow_baseline`)
against hand-computed values."""

import numpy as np


def test_flow_baseline_features_pool_magnitude_and_direction():
  from mol_jax.tools import flow_baseline  # pylint: disable=g-import-not-at-top
  flow = np.zeros((7, 16, 16, 2), np.float32)
  flow[3, :8, :8] = (3.0, 4.0)  # one pair moves the top-left quarter by 5 px
  features = flow_baseline.flow_features(flow, grid=2)
  np.testing.assert_allclose(features[:4], [5.0, 0.0, 0.0, 0.0])  # peak magnitude
  np.testing.assert_allclose(features[4:], [3.0, 4.0] + [0.0] * 6)  # summed (x, y)


def test_frame_difference_features_take_the_peak_change_per_cell():
  from mol_jax.tools import flow_baseline  # pylint: disable=g-import-not-at-top
  video = np.zeros((8, 16, 16), np.float32)
  video[2, 8:, :8] = -2.0  # frame 2 darkens the bottom-left quarter
  video[5, 8:, :8] = 1.0
  video[5:, :8, 8:] = 0.5  # the top-right quarter brightens from frame 5 on
  features = flow_baseline.frame_difference_features(video, grid=2)
  np.testing.assert_allclose(features, [0.0, 0.5, 2.0, 0.0])
