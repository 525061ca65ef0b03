"""The memory-traffic breakdown of a compiled program."""

import jax
import jax.numpy as jnp
import numpy as np

from mol_jax.model import conv
from mol_jax.tools import hlo_traffic


def _compiled_conv_gradient():
  x = jnp.asarray(np.random.default_rng(0).standard_normal((4, 16, 16, 32)), jnp.float32)
  k = jnp.asarray(np.random.default_rng(1).standard_normal((3, 3, 32, 48)), jnp.float32)
  loss = lambda x, k: jnp.sum(jnp.tanh(conv.conv2d(x, k, 1, 1, impl='im2col')))
  return jax.jit(jax.grad(loss, argnums=(0, 1))).lower(x, k).compile()


def test_totals_agree_with_xla_cost_analysis():
  compiled = _compiled_conv_gradient()
  t = hlo_traffic.traffic(compiled.as_text())
  xla = compiled.cost_analysis()['bytes accessed']
  assert abs(t.xla_bytes - xla) <= 0.05 * xla, (t.xla_bytes, xla)
  assert 0 < t.sliced_bytes <= t.xla_bytes
  assert sum(row[2] for row in t.by_operation) <= t.xla_bytes
  assert any('dot_general' in row[0] for row in t.by_operation)
  assert hlo_traffic.markdown(t).count('\n|') == len(t.by_operation) + 2  # header, rule, rows


def test_a_fusion_reading_one_slice_is_charged_the_slice():
  hlo = """HloModule m

%fused (param_0: f32[100,10]) -> f32[10,10] {
  %param_0 = f32[100,10]{1,0} parameter(0)
  ROOT %slice.1 = f32[10,10]{1,0} slice(%param_0), slice={[0:10], [0:10]}
}

ENTRY %main (p: f32[100,10]) -> f32[10,10] {
  %p = f32[100,10]{1,0} parameter(0)
  ROOT %f = f32[10,10]{1,0} fusion(%p), kind=kLoop, calls=%fused
}
"""
  t = hlo_traffic.traffic(hlo)
  assert t.xla_bytes == 4 * (1000 + 100)
  assert t.sliced_bytes == 4 * (100 + 100)
