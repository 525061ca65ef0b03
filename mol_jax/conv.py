"""2-D convolutions written for every backend XLA targets.

On GPU and TPU `lax.conv_general_dilated` maps to tuned kernels. On CPU,
XLA's convolution is slow for this network's shapes (a 3x3 convolution with
1024 channels on a 2x2 map took seconds where the same FLOPs as matmuls take
milliseconds), so there a convolution is a sum over kernel taps of shifted
matmuls, and a transposed convolution is one matmul followed by a
column-to-image sum of shifted low-resolution views (no FLOPs spent on the
zeros a dilated input would add). Large maps keep XLA's convolution, which is
faster there. Both paths compute the same function; tests
check them against each other and against PyTorch.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

_DIMS = ('NHWC', 'HWIO', 'NHWC')


# On CPU, XLA's own convolution is pathological on small maps and fine on
# large ones; measured crossover (docs/PERFORMANCE.md).
_CPU_MATMUL_MAX_PIXELS = 32 * 32


def _use_matmul(impl: str, height: int, width: int) -> bool:
  if impl == 'auto':
    return jax.default_backend() == 'cpu' and height * width <= _CPU_MATMUL_MAX_PIXELS
  if impl not in ('matmul', 'xla'):
    raise ValueError(f"impl must be 'auto', 'matmul' or 'xla', got {impl!r}")
  return impl == 'matmul'


def _flatten_batch(x: jax.Array) -> tuple[jax.Array, tuple[int, ...]]:
  return x.reshape((-1,) + x.shape[-3:]), x.shape[:-3]


def conv2d(x: jax.Array, kernel: jax.Array, stride: int = 1, padding: int = 0,
           impl: str = 'auto') -> jax.Array:
  """Cross-correlation like `torch.nn.Conv2d` (no bias).

  Args:
    x: [..., height, width, in].
    kernel: [kh, kw, in, out].
    stride, padding: symmetric, in pixels.
    impl: 'xla' (lax.conv), 'matmul' (shifted matmuls) or 'auto' (matmul for
      small maps on CPU).

  Returns:
    [..., out_height, out_width, out].
  """
  x, lead = _flatten_batch(x)
  kh, kw, cin, cout = kernel.shape
  if not _use_matmul(impl, *x.shape[1:3]) or cin < 8:
    y = jax.lax.conv_general_dilated(x, kernel, (stride, stride),
                                     [(padding, padding)] * 2, dimension_numbers=_DIMS)
  else:
    xp = jnp.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    n, hp, wp, _ = xp.shape
    oh, ow = (hp - kh) // stride + 1, (wp - kw) // stride + 1
    y = None
    for i in range(kh):
      for j in range(kw):
        tap = jax.lax.slice(xp, (0, i, j, 0),
                            (n, i + (oh - 1) * stride + 1, j + (ow - 1) * stride + 1, cin),
                            (1, stride, stride, 1))
        term = jnp.einsum('nhwc,co->nhwo', tap, kernel[i, j])
        y = term if y is None else y + term
  return y.reshape(lead + y.shape[1:])


def _shift(x: jax.Array, offset: int, axis: int) -> jax.Array:
  """y[i] = x[i + offset] along `axis`, zero where out of range."""
  if offset == 0:
    return x
  size = x.shape[axis]
  pad = [(0, 0)] * x.ndim
  pad[axis] = (0, offset) if offset > 0 else (-offset, 0)
  start = max(offset, 0)
  return jax.lax.slice_in_dim(jnp.pad(x, pad), start, start + size, axis=axis)


def conv_transpose2d(x: jax.Array, kernel: jax.Array, impl: str = 'auto') -> jax.Array:
  """`torch.nn.ConvTranspose2d(kernel_size=4, stride=2, padding=1)` (no bias).

  Args:
    x: [..., height, width, in].
    kernel: [4, 4, in, out], PyTorch's weight [in, out, 4, 4] transposed
      (not flipped).

  Returns:
    [..., 2 * height, 2 * width, out].
  """
  if kernel.shape[:2] != (4, 4):
    raise ValueError(f'only 4x4 stride-2 transposed convolutions, got kernel {kernel.shape}')
  x, lead = _flatten_batch(x)
  n, h, w, _ = x.shape
  cout = kernel.shape[-1]
  if not _use_matmul(impl, h, w):
    y = jax.lax.conv_general_dilated(x, kernel[::-1, ::-1], (1, 1), [(2, 2)] * 2,
                                     lhs_dilation=(2, 2), dimension_numbers=_DIMS)
    return y.reshape(lead + y.shape[1:])
  # Input pixel h, tap ky lands on output 2h + ky - 1. Output phase 0 at
  # 2h' takes (h', ky=1) and (h'-1, ky=3); phase 1 at 2h'+1 takes (h', ky=2)
  # and (h'+1, ky=0).
  cols = jnp.einsum('nhwc,klco->nhwklo', x, kernel)
  taps = {0: ((1, 0), (3, -1)), 1: ((2, 0), (0, 1))}
  phases = []
  for py in (0, 1):
    row = []
    for px in (0, 1):
      acc = None
      for ky, dy in taps[py]:
        for kx, dx in taps[px]:
          term = _shift(_shift(cols[:, :, :, ky, kx], dy, 1), dx, 2)
          acc = term if acc is None else acc + term
      row.append(acc)
    phases.append(jnp.stack(row, axis=3))  # [n, h, w, px, out]
  y = jnp.stack(phases, axis=2)  # [n, h, py, w, px, out]
  y = y.reshape(n, 2 * h, 2 * w, cout)
  return y.reshape(lead + y.shape[1:])
