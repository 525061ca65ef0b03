"""The losses (`mol_jax.losses`) against hand-computed values: the official
terms, and the flow-loss levers of `config.loss` (losses.FlowLossOptions)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import default
from mol_jax import losses


def _landmarks(rng, batch, pairs):
  base = rng.uniform(20, 100, (batch, pairs, 68, 2)).astype(np.float32)
  base[..., 36:42, :] = [40.0, 50.0]  # left eye centre (40, 50)
  base[..., 42:48, :] = [70.0, 46.0]  # right eye centre (70, 46): distance 30.2655
  return base


def test_landmark_loss_is_official_formula():
  rng = np.random.default_rng(0)
  target = _landmarks(rng, 2, 3)
  pred = target + rng.normal(0, 2, target.shape).astype(np.float32)
  mask = np.ones(2, np.float32)
  ipd = np.hypot(30.0, 4.0)
  expected = np.abs(pred - target).sum(axis=(2, 3)) / ipd  # [b, pairs]
  expected = expected.sum() / (2 * 68)
  got = losses.landmark_loss(jnp.asarray(pred), jnp.asarray(target), jnp.asarray(mask))
  assert float(got) == pytest.approx(expected, rel=1e-5)
  # Padding does not change it.
  pad = lambda x: np.concatenate([x, x[:1] * 0 + 7], 0)
  got_padded = losses.landmark_loss(jnp.asarray(pad(pred)), jnp.asarray(pad(target)),
                                    jnp.asarray([1, 1, 0], jnp.float32))
  assert float(got_padded) == pytest.approx(expected, rel=1e-5)


def test_flow_loss_is_mse_over_pairs():
  rng = np.random.default_rng(1)
  flow = rng.normal(size=(2, 7, 4, 4, 2)).astype(np.float32)
  target = rng.normal(size=(2, 7, 4, 4, 2)).astype(np.float32)
  got = losses.flow_loss(jnp.asarray(flow), jnp.asarray(target), jnp.ones(2))
  assert float(got) == pytest.approx(np.mean((flow - target) ** 2) / 7, rel=1e-5)


def test_classification_loss_is_mean_cross_entropy():
  logits = np.array([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]], np.float32)
  labels = np.array([0, 2])
  expected = np.mean([-np.log(np.exp(2) / (np.exp(2) + 1 + np.exp(-1))), np.log(3)])
  got = losses.classification_loss(jnp.asarray(logits), jnp.asarray(labels), jnp.ones(2))
  assert float(got) == pytest.approx(expected, rel=1e-5)


def _example():
  """Two pixels of one pair: errors (3, 4) and (0, 0); the second is exact."""
  flow = np.zeros((1, 1, 1, 2, 2), np.float32)
  flow[0, 0, 0, 0] = (3.0, 4.0)
  return jnp.asarray(flow), jnp.zeros_like(flow), jnp.ones(1)


EPS = losses.CHARBONNIER_EPS
# kind -> (value of the example with num_pairs 1, gradient with respect to the
# first pixel's (x, y), and the exact pixel's). Four elements, two pixels.
HAND = {
    'mse': ((9 + 16) / 4, (2 * 3 / 4, 2 * 4 / 4)),
    'l1': ((3 + 4) / 4, (1 / 4, 1 / 4)),
    'epe': (5 / 2, (3 / 5 / 2, 4 / 5 / 2)),
    'charbonnier': ((math.sqrt(9 + EPS**2) + math.sqrt(16 + EPS**2) + 2 * EPS) / 4,
                    (3 / math.sqrt(9 + EPS**2) / 4, 4 / math.sqrt(16 + EPS**2) / 4)),
}


@pytest.mark.parametrize('kind', losses.FLOW_LOSSES)
def test_each_loss_kind_value_and_gradient_by_hand(kind):
  flow, target, mask = _example()
  value, grad = jax.value_and_grad(losses.flow_loss_of_kind)(flow, target, mask, 1, kind)
  expected, first = HAND[kind]
  np.testing.assert_allclose(value, expected, rtol=1e-6)
  np.testing.assert_allclose(grad[0, 0, 0, 0], first, rtol=1e-5)
  # The exact pixel pulls nowhere (no NaN from the EPE's sqrt, no push from
  # the L1's |0|); Charbonnier's gradient there is 0 / eps = 0.
  np.testing.assert_array_equal(grad[0, 0, 0, 1], [0.0, 0.0])
  # The official divisor is kept for every kind.
  np.testing.assert_allclose(losses.flow_loss_of_kind(flow, target, mask, 7, kind),
                             expected / 7, rtol=1e-6)


def test_mask_drops_padding_examples():
  flow, target, _ = _example()
  flow = jnp.concatenate([flow, flow + 10.0])
  target = jnp.concatenate([target, target])
  for kind in losses.FLOW_LOSSES:
    np.testing.assert_allclose(
        losses.flow_loss_of_kind(flow, target, jnp.array([1.0, 0.0]), 1, kind),
        HAND[kind][0], rtol=1e-6)


def test_scale_multiplies_the_error_before_the_loss():
  flow, target, mask = _example()
  s = 5.0
  for kind, power in (('mse', 2), ('l1', 1), ('epe', 1)):
    np.testing.assert_allclose(losses.flow_loss_of_kind(flow, target, mask, 1, kind, s),
                               s**power * HAND[kind][0], rtol=1e-6)
  # Charbonnier's eps stays in the scaled units.
  np.testing.assert_allclose(
      losses.flow_loss_of_kind(flow, target, mask, 1, 'charbonnier', s),
      (math.sqrt(225 + EPS**2) + math.sqrt(400 + EPS**2) + 2 * EPS) / 4, rtol=1e-6)
  # A shared offset of prediction and target does not matter, scaled or not.
  np.testing.assert_allclose(losses.flow_loss_of_kind(flow + 2, target + 2, mask, 1, 'mse', s),
                             25 * HAND['mse'][0], rtol=1e-6)


def test_default_config_is_the_official_flow_loss_exactly():
  options = losses.flow_loss_options(default.get_config().loss)
  assert options == losses.OFFICIAL_FLOW
  assert options == losses.FlowLossOptions('mse', 1.0, (), 'flow')
  rng = np.random.default_rng(0)
  flow = jnp.asarray(rng.normal(size=(3, 2, 8, 8, 2)), jnp.float32)
  target = jnp.asarray(rng.normal(size=(3, 2, 8, 8, 2)), jnp.float32)
  mask = jnp.array([1.0, 1.0, 0.0])
  official = losses.flow_loss(flow, target, mask, 7)
  assert float(losses.flow_pyramid_loss(flow, None, target, mask, 7, options)) == float(official)
  assert float(jax.jit(losses.flow_pyramid_loss, static_argnums=(4, 5))(
      flow, None, target, mask, 7, options)) == float(jax.jit(losses.flow_loss,
                                                               static_argnums=3)(
                                                                   flow, target, mask, 7))


def test_pyramid_targets_downsample_by_area_in_each_levels_pixels():
  constant = jnp.broadcast_to(jnp.array([1.5, -0.5], jnp.float32), (2, 3, 128, 128, 2))
  levels = losses.pyramid_targets(constant)
  assert len(levels) == losses.PYRAMID_LEVELS == 6
  for level, target in enumerate(levels, start=1):
    side = 128 // 2**level
    assert target.shape == (2, 3, side, side, 2)
    np.testing.assert_allclose(target[..., 0], 1.5 / 2**level, rtol=1e-6)
    np.testing.assert_allclose(target[..., 1], -0.5 / 2**level, rtol=1e-6)
  # Area averaging: level 2 is the mean of each 4x4 block, divided by 4.
  rng = np.random.default_rng(1)
  field = rng.normal(size=(1, 1, 16, 16, 2)).astype(np.float32)
  level2 = losses.pyramid_targets(jnp.asarray(field), levels=2)[1]
  expected = field.reshape(1, 1, 4, 4, 4, 4, 2).mean(axis=(3, 5)) / 4
  np.testing.assert_allclose(level2, expected, rtol=1e-5, atol=1e-7)


def test_pyramid_loss_adds_each_weighted_level():
  rng = np.random.default_rng(2)
  target = jnp.asarray(rng.normal(size=(1, 1, 128, 128, 2)), jnp.float32)
  flow = jnp.zeros_like(target)
  pyramid = [jnp.zeros((1, 1, 128 >> l, 128 >> l, 2)) for l in range(1, 7)]
  weights = (0.0, 0.0, 0.0, 0.0, 0.0, 0.5)
  options = losses.FlowLossOptions(kind='l1', scale=2.0, pyramid_weights=weights)
  mask = jnp.ones(1)
  level6 = losses.pyramid_targets(target)[5]
  expected = (losses.flow_loss_of_kind(flow, target, mask, 7, 'l1', 2.0)
              + 0.5 * losses.flow_loss_of_kind(pyramid[5], level6, mask, 7, 'l1', 2.0))
  np.testing.assert_allclose(losses.flow_pyramid_loss(flow, pyramid, target, mask, 7, options),
                             expected, rtol=1e-6)
  with pytest.raises(ValueError, match='coarser predictions'):
    losses.flow_pyramid_loss(flow, None, target, mask, 7, options)


@pytest.mark.parametrize('field, value, match', [
    ('flow_loss', 'huber', r"config\.loss\.flow_loss must be one of \('mse', 'epe'"),
    ('flow_scale', 0.0, r'config\.loss\.flow_scale must be a finite number > 0'),
    ('flow_scale', -2.0, r'config\.loss\.flow_scale'),
    ('flow_scale', float('nan'), r'config\.loss\.flow_scale'),
    ('flow_pyramid_weights', '0.1,0.2', r'config\.loss\.flow_pyramid_weights must be'),
    ('flow_pyramid_weights', 'a,b,c,d,e,f', r'config\.loss\.flow_pyramid_weights'),
    ('flow_pyramid_weights', '1,1,1,1,1,-1', r'config\.loss\.flow_pyramid_weights'),
    ('flow_target', 'tvl1', r"config\.loss\.flow_target must be one of \('flow', 'true_flow'\)"),
])
def test_bad_lever_values_name_the_field(field, value, match):
  config = default.get_config()
  config.loss[field] = value
  with pytest.raises(ValueError, match=match):
    losses.flow_loss_options(config.loss)


def test_levers_parse():
  config = default.get_config()
  config.loss.update(flow_loss='epe', flow_scale=5, flow_target='true_flow',
                     flow_pyramid_weights=' 0.005, 0.01,0.02,0.08,0.32,0.32 ')
  assert losses.flow_loss_options(config.loss) == losses.FlowLossOptions(
      'epe', 5.0, (0.005, 0.01, 0.02, 0.08, 0.32, 0.32), 'true_flow')
  # A config from before the levers is the official loss.
  assert losses.flow_loss_options({'of_weight': 10.0}) == losses.OFFICIAL_FLOW
