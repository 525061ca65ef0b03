"""The flow head (`mol_jax.model.flow_head`): its correlation against loops, its
pyramid of coarser predictions and the gradient the pyramid loss gives them."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from mol_jax import losses
from mol_jax.model.flow_head import FlowHead, correlation, reachable_displacements

RNG = np.random.default_rng(0)


def test_correlation_matches_loops():
  a = RNG.standard_normal((2, 6, 7, 5)).astype(np.float32)
  b = RNG.standard_normal((2, 6, 7, 5)).astype(np.float32)
  steps = range(-4, 5, 2)
  ref = np.zeros((2, 6, 7, 25), np.float32)
  for i, dy in enumerate(steps):
    for j, dx in enumerate(steps):
      for y in range(6):
        for x in range(7):
          if 0 <= y + dy < 6 and 0 <= x + dx < 7:
            ref[:, y, x, i * 5 + j] = (a[:, y, x] * b[:, y + dy, x + dx]).mean(-1)
  got = correlation(jnp.asarray(a), jnp.asarray(b), max_displacement=4, stride=2)
  np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
  # Only the displacements that land inside the map for some position are
  # kept (|d| <= 5 rows, <= 6 columns): every channel left out is all zero.
  keep = reachable_displacements(6, 7, max_displacement=4, stride=2)
  assert len(keep) == 25 and np.all(np.any(ref[..., keep] != 0, axis=(0, 1, 2)))
  keep = reachable_displacements(16, 16)
  assert len(keep) == 15 * 15
  a16 = jnp.asarray(RNG.standard_normal((1, 16, 16, 3)), jnp.float32)
  full = correlation(a16, a16)
  np.testing.assert_array_equal(np.delete(np.asarray(full), keep, axis=-1), 0.0)
  np.testing.assert_array_equal(correlation(a16, a16, channels=keep), full[..., keep])


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
