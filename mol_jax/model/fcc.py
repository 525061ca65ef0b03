"""FCC: the transformer-style fully-connected convolution.

Half of the channels are mixed along height then width, the other half along
width then height, each time by a circular depthwise convolution whose kernel
is as long as the map: every output sees its whole row and column, a global
receptive field at the cost of a convolution.
"""

from __future__ import annotations

from typing import Callable, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from mol_jax.model.layers import GroupedBatchNorm

META_KERNEL_SIZE = 32


def circulant(kernel: jax.Array) -> jax.Array:
  """Per-channel circulant matrices of a circular cross-correlation.

  Args:
    kernel: [size, channels], tap t of each channel's kernel.

  Returns:
    [channels, size, size] with C[c, i, j] = kernel[(j - i) mod size, c], so
    that out[i] = sum_j C[i, j] x[j] = sum_t kernel[t] x[(i + t) mod size].
  """
  size = kernel.shape[0]
  i = jnp.arange(size)
  taps = (i[None, :] - i[:, None]) % size
  return jnp.transpose(kernel[taps], (2, 0, 1))


def circular_conv(x: jax.Array, kernel: jax.Array, bias: jax.Array,
                  axis: str) -> jax.Array:
  """Circular depthwise cross-correlation along height or width.

  Args:
    x: [..., height, width, channels].
    kernel: [size, channels] with size equal to the map size along `axis`.
    bias: [channels].
    axis: 'h' or 'w'.
  """
  mat = circulant(kernel)
  if axis == 'h':
    y = jnp.einsum('...jwc,cij->...iwc', x, mat)
  elif axis == 'w':
    y = jnp.einsum('...hjc,cij->...hic', x, mat)
  else:
    raise ValueError(f"axis must be 'h' or 'w', got {axis!r}")
  return y + bias


def fully_connected_conv(x: jax.Array, params: dict, norm_a: Callable,
                         norm_b: Callable) -> jax.Array:
  """FCC; a pure function of its parameters and the two pre-norms.

  Args:
    x: [..., height, width, 128].
    params: `meta_kernel_{1,2}_{h,w}` and `pe_{1,2}_{h,w}`, each [32, 64]
      (cropped here to the map size), and `meta_{1,2}_{h,w}_bias` [64].
    norm_a, norm_b: the BatchNorms applied to the first and second half.

  Returns:
    [..., height, width, 128].
  """
  height, width, channels = x.shape[-3:]
  half = channels // 2
  res_a, res_b = x[..., :half], x[..., half:]
  h_pos = lambda p: p[:height, None, :]  # broadcast along width
  w_pos = lambda p: p[None, :width, :]   # broadcast along height
  a = norm_a(res_a + h_pos(params['pe_1_h']))
  b = norm_b(res_b + w_pos(params['pe_1_w']))
  a = circular_conv(a, params['meta_kernel_1_h'][:height], params['meta_1_h_bias'], 'h')
  b = circular_conv(b, params['meta_kernel_1_w'][:width], params['meta_1_w_bias'], 'w')
  a = a + w_pos(params['pe_2_w'])
  b = b + h_pos(params['pe_2_h'])
  a = circular_conv(a, params['meta_kernel_2_w'][:width], params['meta_2_w_bias'], 'w')
  b = circular_conv(b, params['meta_kernel_2_h'][:height], params['meta_2_h_bias'], 'h')
  return jnp.concatenate([res_a + a, res_b + b], axis=-1)


class FullyConnectedConv(nnx.Module):
  """FCC block (`FCC_1` / `FCC_2` in the official weights).

  The official block also builds a feed-forward branch that its forward pass
  never calls; it is left out here and skipped on weight import.
  """

  def __init__(self, channels: int = 128, *, rngs: nnx.Rngs):
    half = channels // 2
    init = nnx.initializers.normal(0.02)
    names = ('1_h', '1_w', '2_h', '2_w')
    for name in names:
      setattr(self, f'meta_kernel_{name}',
              nnx.Param(init(rngs.params(), (META_KERNEL_SIZE, half))))
      setattr(self, f'meta_{name}_bias', nnx.Param(jnp.zeros((half,))))
      setattr(self, f'pe_{name}',
              nnx.Param(init(rngs.params(), (META_KERNEL_SIZE, half))))
    self.norm_a = GroupedBatchNorm(half)
    self.norm_b = GroupedBatchNorm(half)

  def __call__(self, x: jax.Array, *, train: bool,
               update_order: Sequence[int] | None = None) -> jax.Array:
    """x: [batch, groups, height, width, channels] -> same shape."""
    params = {
        name: getattr(self, name)[...]
        for name in vars(self)
        if name.startswith(('meta_', 'pe_'))
    }
    return fully_connected_conv(
        x, params,
        lambda v: self.norm_a(v, train=train, update_order=update_order),
        lambda v: self.norm_b(v, train=train, update_order=update_order))
