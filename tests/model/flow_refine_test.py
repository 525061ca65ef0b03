"""The small-displacement flow refinement (`config.model.flow_refinement`)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from mol_jax import checkpointing, convert, inference
from mol_jax.model import flow_refine, initialisers
from mol_jax.model import mol as models
from mol_jax.model.flow_refine import FlowRefinement, gaussian_blur, lucas_kanade, spatial_gradient
from tests import golden
from tests.random_weights import random_model


def _with_refinement(official: models.MOL, seed: int = 0) -> models.MOL:
  """`official`'s weights in a model with the refinement at its initialisation.

  The refinement's own initialisation, eagerly (a few small layers), so
  that the test does not compile the whole network's initialisers.
  """
  model = models.abstract_model(official.num_classes, official.neighbor_num,
                                flow_refinement=True)
  weights = checkpointing.model_variables(official)
  weights['flow_refine'] = nnx.state(FlowRefinement(rngs=nnx.Rngs(seed)),
                                     (nnx.Param, nnx.BatchStat)).to_pure_dict()
  assert initialisers.load_weights(model, weights) == ()
  return model


@jax.jit
def _forward(graphdef, state, video, flow_pairs=None):
  """Evaluation-mode outputs, compiled (eager op-by-op runs take minutes)."""
  return nnx.merge(graphdef, state)(video, train=False, flow_pairs=flow_pairs)


def _run(model, video, flow_pairs=None):
  return _forward(*nnx.split(model), video, flow_pairs)


def _video(batch=1, seed=0):
  rng = np.random.default_rng(seed)
  return jnp.asarray(rng.normal(size=(batch, 8, 128, 128, 1)), jnp.float32)


@pytest.fixture(scope='module')
def official():
  return random_model(seed=3)


def test_refinement_starts_as_the_official_flow(official):
  refined = _with_refinement(official)
  assert np.abs(np.asarray(refined.flow_refine.predict.kernel[...])).max() == 0
  video = _video()
  a, b = _run(official, video), _run(refined, video)
  for key in ('flow', 'logits', 'landmarks'):
    np.testing.assert_array_equal(np.asarray(a[key]), np.asarray(b[key]), err_msg=key)
  assert np.abs(np.asarray(a['flow'])).max() > 0
  # The subset of pairs that training supervises: each refined with its own frames.
  pairs = jnp.asarray([1, 4])
  a = _run(official, video, pairs)['flow']
  b = _run(refined, video, pairs)['flow']
  assert b.shape == (1, 2, 128, 128, 2)
  np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_subset_of_pairs_refines_the_pairs_it_names(official):
  """With a trained (non-zero) refinement, the flow of pairs [1, 4] is the
  full run's flow of those pairs: each pair gets its own frames."""
  refined = _with_refinement(official)
  kernel = refined.flow_refine.predict.kernel
  kernel[...] = 0.05 * jax.random.normal(jax.random.key(1), kernel[...].shape)
  video = _video()
  full = np.asarray(_run(refined, video)['flow'])
  subset = np.asarray(_run(refined, video, jnp.asarray([1, 4]))['flow'])
  np.testing.assert_allclose(subset, full[:, [1, 4]], rtol=1e-5, atol=1e-5)
  unrefined = np.asarray(_run(official, video)['flow'])
  assert np.abs(full - unrefined).max() > 1e-3


def test_create_model_builds_the_refinement_at_zero_and_the_official_layers_alike():
  """One compiled initialisation: the refinement's last layer is 0, and every
  official layer is what the official network of that seed draws (the
  refinement is built last)."""
  refined = models.create_model(3, 4, seed=7, flow_refinement=True)
  assert refined.flow_refinement
  assert np.abs(np.asarray(refined.flow_refine.predict.kernel[...])).max() == 0
  assert np.abs(np.asarray(refined.flow_refine.predict.bias[...])).max() == 0
  assert np.abs(np.asarray(refined.flow_refine.hidden[0].kernel[...])).max() > 0
  plain = checkpointing.model_variables(models.create_model(3, 4, seed=7))
  weights = checkpointing.model_variables(refined)
  assert set(weights) == set(plain) | {'flow_refine'}
  for name in plain:
    for a, b in zip(jax.tree.leaves(plain[name]), jax.tree.leaves(weights[name])):
      np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=name)


def test_gradient_reaches_the_refinement_and_the_flow_head(official):
  refined = _with_refinement(official)
  video = _video()
  target = jax.random.normal(jax.random.key(2), (1, 1, 128, 128, 2))
  graphdef, params, rest = nnx.split(refined, nnx.Param, ...)

  def loss(params):
    model = nnx.merge(graphdef, params, rest, copy=True)
    flow = model(video, train=True, flow_pairs=jnp.asarray([3]))['flow']
    return jnp.mean(jnp.square(flow - target))

  grad = jax.jit(jax.grad(loss))

  def norms(params):
    grads = grad(params).to_pure_dict()
    return grads, {name: float(_norm(grads[name])) for name in ('flow_refine', 'flownet')}

  grads, by_group = norms(params)
  # At initialisation the zero last layer passes the head's flow through: its
  # own kernel gets a gradient, and the head gets the loss's gradient unchanged.
  assert float(_norm(grads['flow_refine']['predict'])) > 0
  assert float(_norm(grads['flow_refine']['hidden'])) == 0
  assert by_group['flownet'] > 0
  # Once the last layer moves, every refinement layer learns, and the head's
  # gradient also comes through the refinement's input.
  kernel = params['flow_refine']['predict']['kernel']
  kernel.value = 0.05 * jax.random.normal(jax.random.key(1), kernel.value.shape)
  moved, _ = norms(params)
  for i, layer in enumerate(moved['flow_refine']['hidden'].values()):
    assert float(_norm(layer['kernel'])) > 0, i
  head = lambda g: np.asarray(g['flownet']['predict_flow0']['kernel'])
  assert not np.allclose(head(moved), head(grads))


def _norm(tree):
  return jnp.sqrt(sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(tree)))


def test_refinement_input_gradient_is_not_only_the_identity():
  """The refinement reads the flow it corrects: d output / d flow differs
  from the identity once its last layer is not 0."""
  module = FlowRefinement(rngs=nnx.Rngs(0))
  module.predict.kernel[...] = 0.1 * jax.random.normal(jax.random.key(0),
                                                       module.predict.kernel[...].shape)
  frames = _video()
  flow = jax.random.normal(jax.random.key(1), (1, 7, 128, 128, 2))
  out, vjp = jax.vjp(lambda f: module(frames[:, :7], frames[:, 1:], f), flow)
  assert out.shape == flow.shape
  (grad,) = vjp(jnp.ones_like(out))
  assert np.abs(np.asarray(grad) - 1).max() > 1e-3


def test_spatial_gradient_of_a_ramp():
  x = jnp.broadcast_to(jnp.arange(6.0)[None, :, None], (5, 6, 1)) * 2.0
  grad = np.asarray(spatial_gradient(x))
  np.testing.assert_allclose(grad[:, 1:-1, 0], 2.0)
  np.testing.assert_allclose(grad[:, [0, -1], 0], 1.0)  # one-sided at the border
  np.testing.assert_allclose(grad[..., 1], 0.0)


def test_gaussian_blur_keeps_a_constant_and_the_mean():
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(2, 40, 40, 3)).astype(np.float32))
  np.testing.assert_allclose(np.asarray(gaussian_blur(jnp.full((40, 40, 1), 3.0), 2.0)), 3.0, rtol=1e-6)
  blurred = np.asarray(gaussian_blur(x, 1.5))
  assert blurred.shape == x.shape
  assert blurred.std() < 0.5 * float(x.std())  # it smooths
  # Interior pixels: a separable, normalised kernel keeps each channel's mean.
  np.testing.assert_allclose(blurred[:, 10:30, 10:30].mean(), np.asarray(x)[:, 10:30, 10:30].mean(), atol=0.05)


def _texture(shift_x: float, shift_y: float, size: int = 64) -> jax.Array:
  """A smooth texture moved by (shift_x, shift_y) pixels: [size, size, 1]."""
  y, x = np.mgrid[:size, :size].astype(np.float64)
  x, y = x - shift_x, y - shift_y
  image = np.sin(2 * np.pi * x / 13) + np.cos(2 * np.pi * y / 11) + 0.5 * np.sin(2 * np.pi * (x + y) / 17)
  return jnp.asarray(0.3 * image[..., None], jnp.float32)


@pytest.mark.parametrize('shift', [(0.3, -0.2), (-0.8, 0.5), (0.05, 0.1)])
def test_lucas_kanade_recovers_a_small_translation(shift):
  estimate = np.asarray(lucas_kanade(_texture(0, 0), _texture(*shift)))
  assert estimate.shape == (64, 64, 6)
  for window in range(3):
    centre = estimate[20:44, 20:44, 2 * window:2 * window + 2].reshape(-1, 2)
    np.testing.assert_allclose(np.median(centre, axis=0), shift, atol=0.03 + 0.05 * np.abs(shift).max())


def test_lucas_kanade_is_zero_without_motion_or_texture():
  still = np.asarray(lucas_kanade(_texture(0, 0), _texture(0, 0)))
  np.testing.assert_allclose(still, 0.0, atol=1e-6)
  flat = jnp.full((32, 32, 1), 0.4)
  # A brightness change on a flat face is not motion: the damping keeps it 0.
  np.testing.assert_allclose(np.asarray(lucas_kanade(flat, flat + 0.01)), 0.0, atol=1e-6)


def test_official_weights_load_into_every_official_layer():
  """The official state_dict into a refinement model: official layers exactly
  as in the official import, the refinement at its initialisation, and the
  same outputs."""
  golden.require()
  state_dict = golden.official_state_dict(num_classes=3)
  plain = convert.import_official(state_dict, 3)
  refined = convert.import_official(state_dict, 3, flow_refinement=True)
  a, b = checkpointing.model_variables(plain), checkpointing.model_variables(refined)
  assert set(b) == set(a) | {'flow_refine'}
  for name in a:
    for x, y in zip(jax.tree.leaves(a[name]), jax.tree.leaves(b[name])):
      np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=name)
  assert np.abs(np.asarray(refined.flow_refine.predict.kernel[...])).max() == 0
  video = np.transpose(golden.outputs()['x'], (0, 2, 3, 4, 1))[:1]
  np.testing.assert_array_equal(np.asarray(_run(plain, jnp.asarray(video))['flow']),
                                np.asarray(_run(refined, jnp.asarray(video))['flow']))


def test_checkpoint_records_and_rebuilds_the_refinement(official, tmp_path):
  refined = _with_refinement(official)
  kernel = refined.flow_refine.predict.kernel
  kernel[...] = 0.05 * jax.random.normal(jax.random.key(4), kernel[...].shape)
  checkpointing.save_model(str(tmp_path / 'refined'), refined, step=5)
  assert checkpointing.checkpoint_step(str(tmp_path / 'refined')) == 5
  restored = checkpointing.restore_model(str(tmp_path / 'refined'))
  assert restored.flow_refinement
  predictor = inference.from_checkpoint(str(tmp_path / 'refined'))
  assert predictor.model.flow_refinement
  video = np.asarray(_video())
  np.testing.assert_allclose(predictor.predict(video)['flow'],
                             np.asarray(_run(refined, jnp.asarray(video))['flow']),
                             rtol=1e-5, atol=1e-5)
  # The official network still round-trips as itself.
  checkpointing.save_model(str(tmp_path / 'official'), official)
  assert not checkpointing.restore_model(str(tmp_path / 'official')).flow_refinement


def _save_with_model_config(directory: str, model: models.MOL, config: dict) -> str:
  """A model checkpoint as `save_model` writes it, with `config` as its
  model config: what an older mol_jax wrote."""
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  with ocp.CheckpointManager(directory) as manager:
    manager.save(0, args=ocp.args.Composite(
        model=ocp.args.StandardSave(checkpointing.model_variables(model)),
        model_config=ocp.args.JsonSave(config)), force=True)
    manager.wait_until_finished()
  return directory


def test_checkpoint_without_the_field_loads_as_official(official, tmp_path):
  """Checkpoints written before the option have no `flow_refinement`."""
  config = checkpointing.model_config(official)
  del config['flow_refinement']
  directory = _save_with_model_config(str(tmp_path / 'old'), official, config)
  model = checkpointing.restore_model(directory)
  assert not model.flow_refinement and not hasattr(model, 'flow_refine')


def test_checkpoint_of_an_earlier_refinement_is_one_clear_error(official, tmp_path):
  """A refinement checkpoint without `flow_refinement_version` (version 1,
  before the Lucas-Kanade inputs) is refused by name, not as a damaged file."""
  refined = _with_refinement(official)
  config = checkpointing.model_config(refined)
  assert config['flow_refinement_version'] == flow_refine.VERSION
  del config['flow_refinement_version']
  directory = _save_with_model_config(str(tmp_path / 'v1'), refined, config)
  with pytest.raises(checkpointing.CheckpointError) as error:
    checkpointing.restore_model(directory)
  assert str(error.value).startswith(f'{directory}: its flow refinement is version 1,')
  assert 'damaged' not in str(error.value)


def test_refinement_weights_do_not_fit_an_official_model(official):
  refined = _with_refinement(official)
  problem = initialisers.weights_mismatch(models.abstract_model(3),
                                          checkpointing.model_variables(refined))
  assert 'flow_refine' in problem and 'flow_refinement=True' in problem
