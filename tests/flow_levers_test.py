"""The flow-loss levers of `config.loss` (losses.FlowLossOptions) and the flow probe."""

import json
import math
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from configs import default
from configs import test as test_config
from mol_jax import losses, train
from mol_jax.data import input_pipeline, sources
from mol_jax.model.flow_head import FlowHead
from mol_jax.tools import flow_probe

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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


@pytest.fixture(scope='module')
def flow_head():
  """A randomly initialised flow head (compiled init: seconds, not a minute)."""
  make = lambda: FlowHead(128, rngs=nnx.Rngs(0))
  graphdef, _ = nnx.split(nnx.eval_shape(make))
  state = jax.jit(lambda: nnx.split(make())[1],
                  compiler_options={'xla_backend_optimization_level': 0})()
  return nnx.merge(graphdef, state)


def _head_inputs():
  rng = np.random.default_rng(0)
  normal = lambda *shape: jnp.asarray(rng.normal(size=shape), jnp.float32)
  return (normal(1, 2, 128, 128, 1), normal(1, 1, 16, 16, 128), normal(1, 1, 16, 16, 128),
          0.3 * normal(1, 1, 128, 128, 2))


def test_flow_head_pyramid_is_the_same_forward_plus_its_coarse_predictions(flow_head):
  frames, first, second, _ = _head_inputs()
  graphdef, state = nnx.split(flow_head)

  @jax.jit
  def both(state):
    head = nnx.merge(graphdef, state)
    return (head(frames, first, second, train=False, pairs=((0, 1),)),
            head(frames, first, second, train=False, pairs=((0, 1),), pyramid=True))

  flow, (flow2, pyramid) = both(state)
  np.testing.assert_array_equal(flow, flow2)
  assert [p.shape for p in pyramid] == [(1, 1, 128 >> l, 128 >> l, 2) for l in range(1, 7)]


def test_pyramid_loss_reaches_predict_flow6(flow_head):
  """The official loss reaches the coarsest prediction only through the
  whole decoder (1e-6 of the pyramid's gradient here), and not at all from
  a zero-flow start (`flow_at_zero`: predict_flow0 at 0 passes no gradient
  back); the pyramid term gives it a gradient of its own."""
  frames, first, second, target = _head_inputs()
  graphdef, params, rest = nnx.split(flow_head, nnx.Param, ...)
  weights = (0.005, 0.01, 0.02, 0.08, 0.32, 0.32)

  @jax.jit
  def gradients(params):
    def loss(params, pyramid_weights):
      model = nnx.merge(graphdef, params, rest, copy=True)
      flow, pyramid = model(frames, first, second, train=True, pairs=((0, 1),), pyramid=True)
      options = losses.FlowLossOptions(pyramid_weights=pyramid_weights)
      return losses.flow_pyramid_loss(flow, pyramid, target, jnp.ones(1), 7, options)
    return jax.grad(loss)(params, ()), jax.grad(loss)(params, weights)

  norm = lambda grads, name: float(optax_norm(grads[name]))
  official, multiscale = gradients(params)
  assert 0 < norm(official, 'predict_flow6') < 1e-3 * norm(multiscale, 'predict_flow6')
  # The full-resolution layer's gradient is the official one either way.
  np.testing.assert_allclose(norm(multiscale, 'predict_flow0'), norm(official, 'predict_flow0'),
                             rtol=1e-5)

  zero = jax.tree_util.tree_map_with_path(
      lambda path, x: jnp.zeros_like(x) if 'predict_flow0' in jax.tree_util.keystr(path) else x,
      params)
  official, multiscale = gradients(zero)
  assert norm(official, 'predict_flow6') == 0.0
  assert norm(multiscale, 'predict_flow6') > 0.0


def optax_norm(tree) -> jax.Array:
  return jnp.sqrt(sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(tree)))


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


def test_train_rejects_bad_levers_before_writing(tmp_path):
  config = test_config.get_config()
  config.data_dir = str(tmp_path / 'tfds')
  config.loss.flow_loss = 'huber'
  workdir = tmp_path / 'run'
  with pytest.raises(train.ConfigError, match='config.loss.flow_loss'):
    train.train_and_evaluate(config, str(workdir))
  assert not workdir.exists() and not (tmp_path / 'tfds').exists()


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  return str(tmp_path_factory.mktemp('tfds'))


def test_true_flow_target_needs_a_set_with_the_truth(data_dir, tmp_path, monkeypatch):
  config = test_config.get_config()
  config.data_dir = data_dir
  config.loss.flow_target = 'true_flow'
  monkeypatch.setattr(sources, 'has_truth', lambda *args: False)
  with pytest.raises(train.ConfigError, match="config.loss.flow_target='true_flow'"):
    train.train_and_evaluate(config, str(tmp_path / 'run'))
  assert not (tmp_path / 'run').exists()


def test_training_batches_carry_the_truth_only_when_asked(data_dir):
  config = test_config.get_config()
  config.data_dir = data_dir
  sources.ensure_built([config.dataset], data_dir, build_if_missing=True)
  subjects = input_pipeline.list_subjects('synthetic_me/small', data_dir)
  common = dict(batch_size=2, seed=0, flip=True, process_index=0, process_count=1)
  plain = next(input_pipeline.create_datasets('synthetic_me/small', data_dir, subjects[:1],
                                              **common).train)
  assert 'true_flow' not in plain
  truth = next(input_pipeline.create_datasets('synthetic_me/small', data_dir, subjects[:1],
                                              train_truth=True, **common).train)
  assert truth['true_flow'].shape == truth['flow'].shape == (2, 7, 128, 128, 2)
  assert truth['true_landmarks'].shape == truth['landmarks'].shape
  np.testing.assert_array_equal(truth['flow'], plain['flow'])  # same clips and crops


def test_flip_mirrors_the_truth_with_the_targets():
  rng = np.random.default_rng(3)
  example = {'video': rng.normal(size=(8, 4, 4, 1)).astype(np.float32),
             'flow': rng.normal(size=(7, 4, 4, 2)).astype(np.float32),
             'landmarks': rng.uniform(0, 3, (7, 68, 2)).astype(np.float32)}
  example.update(true_flow=example['flow'] + 1, true_landmarks=example['landmarks'] + 1)
  flipped = input_pipeline.flip_example(example)
  np.testing.assert_allclose(flipped['true_flow'] - np.array([-1, 1]), flipped['flow'],
                             atol=1e-6)
  np.testing.assert_allclose(flipped['true_landmarks'] + np.array([1, -1]),
                             flipped['landmarks'], atol=1e-6)


def _metrics_rows(fold):
  rows = [
      {'step': 5, 'prefix': f'{fold}/train', 'loss': 1.0, 'steps_per_second': 1.0},
      {'step': 10, 'prefix': f'{fold}/train', 'loss': 1.0, 'steps_per_second': 0.5},
      {'step': 10, 'prefix': f'{fold}/test', 'uf1': 0.5, 'accuracy': 0.6,
       'flow_epe_vs_truth': 0.2, 'zero_flow_epe_vs_truth': 0.25, 'tvl1_epe_vs_truth': 0.1},
      {'step': 10, 'prefix': 'other/test', 'uf1': 0.0, 'accuracy': 0.0,
       'flow_epe_vs_truth': 9.0, 'zero_flow_epe_vs_truth': 1.0, 'tvl1_epe_vs_truth': 1.0},
      # A resumed run logs step 15 twice; the later rows win.
      {'step': 15, 'prefix': f'{fold}/train', 'loss': 1.0, 'steps_per_second': 5.0},
      {'step': 15, 'prefix': f'{fold}/test', 'uf1': 0.1, 'accuracy': 0.1,
       'flow_epe_vs_truth': 9.0, 'zero_flow_epe_vs_truth': 1.0, 'tvl1_epe_vs_truth': 1.0},
      {'step': 15, 'prefix': f'{fold}/train', 'loss': 1.0, 'steps_per_second': 1.0},
      {'step': 15, 'prefix': f'{fold}/test', 'uf1': 0.75, 'accuracy': 0.8,
       'flow_epe_vs_truth': 0.25, 'zero_flow_epe_vs_truth': 0.25, 'tvl1_epe_vs_truth': 0.1},
  ]
  return ''.join(json.dumps(r) + '\n' for r in rows)


def test_probe_reads_the_folds_evaluations(tmp_path):
  path = tmp_path / 'metrics.jsonl'
  path.write_text(_metrics_rows('sy01'))
  evaluations = flow_probe.read_evaluations(str(path), 'sy01')
  assert [e['step'] for e in evaluations] == [10, 15]
  first, last = evaluations
  assert first['reference'] == 'truth'
  np.testing.assert_allclose([first['epe'], first['zero_epe'], first['ratio'],
                              first['tvl1_ratio'], first['uf1']], [0.2, 0.25, 0.8, 0.4, 0.5])
  np.testing.assert_allclose(first['wall_s'], 5 / 1.0 + 5 / 0.5)
  np.testing.assert_allclose([last['ratio'], last['uf1'], last['wall_s']], [1.0, 0.75, 20.0])
  probe = {'dataset': 'synthetic_me/demo', 'fold': 'sy01', 'evaluations': evaluations,
           'levers': {name: flow_probe._get(default.get_config(), name)  # pylint: disable=protected-access
                      for name in flow_probe.LEVERS}}
  table = flow_probe.markdown(probe)
  assert '| 10 | 0.2000 | 0.2500 | 0.8000 | 0.4000 | 0.5000 | 15 |' in table
  assert "| sy01 | 'mse' | 1 | '' | 'flow' | False | 10 | 0.0001 | '' | False | 7 | 1000 |" in (
      flow_probe.summary_row(probe))
  assert '10: 0.800, 15: 1.000' in flow_probe.summary_row(probe)


def test_probe_without_the_truth_falls_back_to_the_targets(tmp_path):
  path = tmp_path / 'metrics.jsonl'
  path.write_text(json.dumps({'step': 3, 'prefix': 's1/test', 'uf1': 0.5, 'accuracy': 0.5,
                              'flow_epe_vs_targets': 0.3, 'zero_flow_epe_vs_targets': 0.6})
                  + '\n' + json.dumps({'step': 4, 'prefix': 's1/test', 'uf1': 0.5,
                                       'accuracy': 0.5}) + '\n')
  (only,) = flow_probe.read_evaluations(str(path), 's1')
  assert (only['reference'], only['ratio'], only['tvl1_ratio'], only['wall_s']) == (
      'targets', 0.5, None, None)


def test_probe_end_to_end_with_every_lever_on(data_dir, tmp_path):
  """Two steps of configs/test.py trained against the exact motion, with EPE
  in 1/5 px, the pyramid and flips; the probe reads both evaluations; a
  rerun reads them back; another config in the same workdir is refused."""
  config = test_config.get_config()
  config.data_dir = data_dir
  config.augment.flip = True
  config.loss.update(flow_loss='epe', flow_scale=5.0, flow_target='true_flow',
                     flow_pyramid_weights='0.005,0.01,0.02,0.08,0.32,0.32')
  workdir = str(tmp_path / 'probe')
  probe = flow_probe.run_probe(config, workdir, eval_every=1)
  assert [e['step'] for e in probe['evaluations']] == [1, 2]
  for e in probe['evaluations']:
    assert e['reference'] == 'truth'
    assert 0 < e['epe'] and 0 < e['zero_epe'] and 0 < e['tvl1_ratio'] < 1
  assert probe['levers']['loss.flow_target'] == 'true_flow'
  with open(os.path.join(workdir, 'probe.json')) as f:
    assert json.load(f)['evaluations'] == probe['evaluations']
  assert os.path.isfile(os.path.join(workdir, 'probe.md'))
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    rows = [json.loads(line) for line in f]
  losses_logged = [r['loss/flow'] for r in rows if r['prefix'].endswith('/train')]
  assert losses_logged and all(np.isfinite(losses_logged))
  assert flow_probe.run_probe(config, workdir, eval_every=1)['evaluations'] == probe['evaluations']
  config.loss.flow_scale = 1.0
  with pytest.raises(train.ConfigError, match=r'another config.*loss\.flow_scale'):
    flow_probe.run_probe(config, workdir, eval_every=1)


def test_probe_command_bad_lever_is_one_line_and_exit_2(tmp_path):
  workdir = tmp_path / 'probe'
  result = subprocess.run(
      [sys.executable, '-m', 'mol_jax.tools.flow_probe', '--config=configs/test.py',
       f'--workdir={workdir}', '--config.loss.flow_loss=huber',
       f'--config.data_dir={tmp_path / "tfds"}'],
      cwd=REPO, capture_output=True, text=True, check=False)
  assert result.returncode == 2, result.stderr
  assert result.stderr.strip().splitlines()[-1].startswith('error: config.loss.flow_loss')
  assert not workdir.exists()
