"""2-D convolutions written for every backend XLA targets.

On GPU and TPU `lax.conv_general_dilated` maps to tuned kernels. On CPU,
XLA's convolution is slow for this network's shapes, above all in the
backward pass (a transposed convolution on a 64x64 map took 8.7 s forward
and backward where the same FLOPs as matmuls take 0.6 s; docs/PERFORMANCE.md).
There every convolution is one large matmul plus cheap data movement, in one
of two layouts:

* `im2col` (input side): the kh*kw shifted input views are concatenated
  along channels and multiplied by the [kh*kw*in, out] kernel;
* `cols` (output side): the input is multiplied by the [in, kh*kw*out]
  kernel and the kh*kw results are added at their shifted positions. It
  moves less memory when `out` is much smaller than `in` (the flow
  predictions have 2 output channels), and it is how a transposed
  convolution is computed without spending FLOPs on inserted zeros.

Size-preserving stride-1 convolutions in either layout and the transposed
`cols` path have a hand-written backward, where autodiff of the shifted
views would write a padded copy per tap (below). On GPU and TPU the transposed
convolutions are XLA's dilated-input convolution: the per-phase alternatives
measured on an H100 were no faster on most layers (docs/PERFORMANCE.md).

Every path computes the same function; tests check them against each other
and against PyTorch.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

_DIMS = ('NHWC', 'HWIO', 'NHWC')
IMPLS = ('auto', 'xla', 'im2col', 'cols')


def _xla_conv(x: jax.Array, kernel: jax.Array, strides, padding, lhs_dilation=None) -> jax.Array:
  """`lax.conv_general_dilated` in NHWC / HWIO."""
  return jax.lax.conv_general_dilated(x, kernel, strides, padding, lhs_dilation=lhs_dilation,
                                      dimension_numbers=_DIMS)


def _conv_impl(impl: str, stride: int, cin: int, cout: int) -> str:
  if impl not in IMPLS:
    raise ValueError(f'impl must be one of {IMPLS}, got {impl!r}')
  if impl != 'auto':
    return impl
  if jax.default_backend() != 'cpu':
    return 'xla'
  return 'cols' if stride == 1 and 4 * cout <= cin else 'im2col'


def _flatten_batch(x: jax.Array) -> tuple[jax.Array, tuple[int, ...]]:
  return x.reshape((-1,) + x.shape[-3:]), x.shape[:-3]


def _shift(x: jax.Array, offset: int, axis: int) -> jax.Array:
  """y[i] = x[i + offset] along `axis`, zero where out of range."""
  if offset == 0:
    return x
  size = x.shape[axis]
  pad = [(0, 0)] * x.ndim
  pad[axis] = (0, offset) if offset > 0 else (-offset, 0)
  start = max(offset, 0)
  return jax.lax.slice_in_dim(jnp.pad(x, pad), start, start + size, axis=axis)


def _taps(x: jax.Array, kernel_2d: jax.Array, taps: int, cout: int) -> list[jax.Array]:
  """x @ kernel_2d split into `taps` maps of `cout` channels.

  Splitting (whose transpose is one concatenation) rather than indexing
  (whose transpose is one full-size pad per tap) keeps the backward pass
  from writing a copy of every tap's gradient.
  """
  n, h, w, _ = x.shape
  cols = jnp.einsum('nhwc,ck->nhwk', x, kernel_2d).reshape(n, h, w, taps, cout)
  return [c.reshape(n, h, w, cout) for c in jnp.split(cols, taps, axis=3)]


def _patches(xp: jax.Array, kh: int, kw: int, stride: int) -> jax.Array:
  """[n, oh, ow, kh * kw * c] im2col patches of a padded NHWC input."""
  n, hp, wp, c = xp.shape
  oh, ow = (hp - kh) // stride + 1, (wp - kw) // stride + 1
  taps = [jax.lax.slice(xp, (0, i, j, 0),
                        (n, i + (oh - 1) * stride + 1, j + (ow - 1) * stride + 1, c),
                        (1, stride, stride, 1))
          for i in range(kh) for j in range(kw)]
  return jnp.concatenate(taps, axis=-1)


def _im2col_forward(x: jax.Array, kernel: jax.Array, stride: int, padding: int
                    ) -> tuple[jax.Array, jax.Array]:
  """(output, patches) of the `im2col` path."""
  kh, kw, cin, cout = kernel.shape
  xp = jnp.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
  patches = _patches(xp, kh, kw, stride)
  return jnp.einsum('nhwk,ko->nhwo', patches, kernel.reshape(kh * kw * cin, cout)), patches


def _cols_forward(x: jax.Array, kernel: jax.Array, padding: int) -> jax.Array:
  """The `cols` path (stride 1)."""
  kh, kw, cin, cout = kernel.shape
  cols = _taps(x, jnp.moveaxis(kernel, 2, 0).reshape(cin, kh * kw * cout), kh * kw, cout)
  oh, ow = x.shape[1] + 2 * padding - kh + 1, x.shape[2] + 2 * padding - kw + 1
  y = None
  for i in range(kh):
    for j in range(kw):
      # Output (r, s) reads input (r + i - padding, s + j - padding) through tap (i, j).
      term = _shift(_shift(cols[i * kw + j], i - padding, 1), j - padding, 2)[:, :oh, :ow]
      y = term if y is None else y + term
  return y


def _full_correlation_patches(g: jax.Array, kh: int, kw: int, padding: int) -> jax.Array:
  """im2col patches of a stride-1 convolution's output gradient, padded so
  that patch (h, w), tap (a, b) is the gradient at output (h + a - kh + 1 +
  padding, w + b - kw + 1 + padding): every output the input pixel (h, w)
  fed, through tap (kh - 1 - a, kw - 1 - b)."""
  lo_h, lo_w = kh - 1 - padding, kw - 1 - padding
  gp = jnp.pad(g, ((0, 0), (lo_h, lo_h), (lo_w, lo_w), (0, 0)))
  return _patches(gp, kh, kw, 1)


# The backward passes below are written by hand: autodiff of the shifted
# views writes one full-size padded copy per tap of the input gradient and
# then adds them, the largest memory traffic of the train step (with them
# written by hand, the train step took 7.7 % less time: docs/PERFORMANCE.md). Here the
# input gradient of a stride-1 convolution is itself an im2col convolution of
# the output gradient with the flipped kernel, and the backward of the `cols`
# paths reads im2col patches of the output gradient: one concatenation, no
# per-tap copies (docs/PERFORMANCE.md).
@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _same_conv_im2col(x: jax.Array, kernel: jax.Array, padding: int) -> jax.Array:
  return _im2col_forward(x, kernel, 1, padding)[0]


def _same_conv_im2col_fwd(x, kernel, padding):
  y, patches = _im2col_forward(x, kernel, 1, padding)
  return y, (patches, kernel)


def _same_conv_im2col_bwd(padding, residuals, g):
  patches, kernel = residuals
  kh, kw, cin, cout = kernel.shape
  g_kernel = jnp.einsum('nhwk,nhwo->ko', patches, g).reshape(kernel.shape)
  flipped = jnp.swapaxes(kernel[::-1, ::-1], 2, 3).reshape(kh * kw * cout, cin)
  g_x = jnp.einsum('nhwk,kc->nhwc', _full_correlation_patches(g, kh, kw, padding), flipped)
  return g_x, g_kernel


_same_conv_im2col.defvjp(_same_conv_im2col_fwd, _same_conv_im2col_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _same_conv_cols(x: jax.Array, kernel: jax.Array, padding: int) -> jax.Array:
  return _cols_forward(x, kernel, padding)


def _same_conv_cols_fwd(x, kernel, padding):
  return _cols_forward(x, kernel, padding), (x, kernel)


def _same_conv_cols_bwd(padding, residuals, g):
  x, kernel = residuals
  kh, kw, cin, cout = kernel.shape
  g_cols = _full_correlation_patches(g, kh, kw, padding)  # taps flipped
  flipped = jnp.moveaxis(kernel[::-1, ::-1], 2, 0).reshape(cin, kh * kw * cout)
  g_x = jnp.einsum('nhwk,ck->nhwc', g_cols, flipped)
  g_flipped = jnp.einsum('nhwc,nhwk->ck', x, g_cols).reshape(cin, kh, kw, cout)
  return g_x, jnp.moveaxis(g_flipped, 0, 2)[::-1, ::-1]


_same_conv_cols.defvjp(_same_conv_cols_fwd, _same_conv_cols_bwd)


def conv2d(x: jax.Array, kernel: jax.Array, stride: int = 1, padding: int = 0,
           impl: str = 'auto') -> jax.Array:
  """Cross-correlation like `torch.nn.Conv2d` (no bias).

  Args:
    x: [..., height, width, in].
    kernel: [kh, kw, in, out].
    stride, padding: symmetric, in pixels.
    impl: 'xla' (lax.conv), 'im2col', 'cols' (stride 1 only) or 'auto'
      (lax.conv off CPU; on CPU `cols` when out <= in / 4 at stride 1, else
      `im2col`).

  Returns:
    [..., out_height, out_width, out].
  """
  x, lead = _flatten_batch(x)
  kh, kw, cin, cout = kernel.shape
  impl = _conv_impl(impl, stride, cin, cout)
  if impl == 'xla':
    y = _xla_conv(x, kernel, (stride, stride), [(padding, padding)] * 2)
  elif impl == 'im2col':
    same = stride == 1 and 2 * padding == kh - 1 == kw - 1
    if same:
      y = _same_conv_im2col(x, kernel, padding)
    else:
      y = _im2col_forward(x, kernel, stride, padding)[0]
  else:
    if stride != 1:
      raise ValueError(f"impl 'cols' needs stride 1, got {stride}")
    same = 2 * padding == kh - 1 == kw - 1
    if same:
      y = _same_conv_cols(x, kernel, padding)
    else:
      y = _cols_forward(x, kernel, padding)
  return y.reshape(lead + y.shape[1:])


# A 4x4 stride-2 padding-1 transposed convolution: input pixel h, tap k lands
# on output 2h + k - 1. So output phase p (0: even rows or columns, 1: odd) at
# 2h' + p takes (kernel tap, input offset) pairs: phase 0 (1, 0) and (3, -1),
# phase 1 (2, 0) and (0, +1).
_PHASE_TAPS = {0: ((1, 0), (3, -1)), 1: ((2, 0), (0, 1))}


def _interleave_phases(phases: list[list[jax.Array]]) -> jax.Array:
  """[[y00, y01], [y10, y11]] of [n, h, w, c] -> [n, 2h, 2w, c]."""
  n, h, w, c = phases[0][0].shape
  rows = [jnp.stack(row, axis=3) for row in phases]  # [n, h, w, px, c]
  return jnp.stack(rows, axis=2).reshape(n, 2 * h, 2 * w, c)  # [n, h, py, w, px, c]


def conv_transpose2d(x: jax.Array, kernel: jax.Array, impl: str = 'auto') -> jax.Array:
  """`torch.nn.ConvTranspose2d(kernel_size=4, stride=2, padding=1)` (no bias).

  Args:
    x: [..., height, width, in].
    kernel: [4, 4, in, out], PyTorch's weight [in, out, 4, 4] transposed
      (not flipped).
    impl: 'xla' (lax.conv with input dilation), 'cols' or 'auto' (`cols` on
      CPU, `xla` elsewhere).

  Returns:
    [..., 2 * height, 2 * width, out].
  """
  if kernel.shape[:2] != (4, 4):
    raise ValueError(f'only 4x4 stride-2 transposed convolutions, got kernel {kernel.shape}')
  if impl == 'im2col':
    raise ValueError("a transposed convolution has no 'im2col' path; its output-side "
                     "equivalent is impl='cols'")
  x, lead = _flatten_batch(x)
  cin = x.shape[-1]
  cout = kernel.shape[-1]
  impl = _conv_impl(impl, 2, cin, cout)
  if impl == 'xla':
    y = _xla_conv(x, kernel[::-1, ::-1], (1, 1), [(2, 2)] * 2, lhs_dilation=(2, 2))
    return y.reshape(lead + y.shape[1:])
  y = _transpose_cols(x, kernel)
  return y.reshape(lead + y.shape[1:])


def _transpose_cols_forward(x: jax.Array, kernel: jax.Array) -> jax.Array:
  cin, cout = kernel.shape[2:]
  cols = _taps(x, jnp.moveaxis(kernel, 2, 0).reshape(cin, 16 * cout), 16, cout)
  phases = []
  for py in (0, 1):
    row = []
    for px in (0, 1):
      acc = None
      for ky, dy in _PHASE_TAPS[py]:
        for kx, dx in _PHASE_TAPS[px]:
          term = _shift(_shift(cols[4 * ky + kx], dy, 1), dx, 2)
          acc = term if acc is None else acc + term
      row.append(acc)
    phases.append(row)
  return _interleave_phases(phases)


@jax.custom_vjp
def _transpose_cols(x, kernel):
  return _transpose_cols_forward(x, kernel)


def _transpose_cols_fwd(x, kernel):
  return _transpose_cols_forward(x, kernel), (x, kernel)


def _transpose_cols_bwd(residuals, g):
  # Input pixel h fed the outputs 2h + k - 1 through tap k: on the gradient
  # padded by one, its 4x4 stride-2 im2col patch. Tap k = 2a + p reads padded
  # row 2(h + a) + p, so in the space-to-depth layout of the padded gradient
  # ([h + 1, w + 1, 2 x 2 phases, out]) the patch is 4 unit-stride views
  # (a, b), each 4 x out channels wide. One space-to-depth copy reads the
  # gradient once; 16 stride-2 views would each recompute it from its
  # producer (XLA fuses that into every view: docs/PERFORMANCE.md).
  x, kernel = residuals
  n, h, w, cin = x.shape
  cout = kernel.shape[-1]
  gp = jnp.pad(g, ((0, 0), (1, 1), (1, 1), (0, 0))).reshape(n, h + 1, 2, w + 1, 2, cout)
  gs = gp.transpose(0, 1, 3, 2, 4, 5).reshape(n, h + 1, w + 1, 4 * cout)
  g_cols = jnp.concatenate([gs[:, a:a + h, b:b + w] for a in (0, 1) for b in (0, 1)], axis=-1)
  # Kernel columns in the patch's order (a, b, p, q, out) for tap (2a + p, 2b + q).
  blocked = kernel.reshape(2, 2, 2, 2, cin, cout).transpose(4, 0, 2, 1, 3, 5)
  g_x = jnp.einsum('nhwk,ck->nhwc', g_cols, blocked.reshape(cin, 16 * cout))
  g_blocked = jnp.einsum('nhwc,nhwk->ck', x, g_cols).reshape(cin, 2, 2, 2, 2, cout)
  return g_x, g_blocked.transpose(1, 3, 2, 4, 0, 5).reshape(kernel.shape)


_transpose_cols.defvjp(_transpose_cols_fwd, _transpose_cols_bwd)
