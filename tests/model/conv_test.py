"""The convolutions (`mol_jax.model.conv`) against PyTorch, and each matmul
layout against XLA's own convolution in the backward pass."""

import numpy as np
import pytest
import torch
import jax
import jax.numpy as jnp

from mol_jax.model import conv

RNG = np.random.default_rng(0)


def _nchw(x):
  return torch.tensor(np.ascontiguousarray(np.moveaxis(x, -1, 1)))


def _nhwc(t):
  return np.moveaxis(t.detach().numpy(), 1, -1)


@pytest.mark.parametrize('impl', ['xla', 'im2col', 'cols'])
@pytest.mark.parametrize('kernel,stride,padding', [(3, 1, 1), (3, 2, 1), (2, 2, 0), (4, 2, 1),
                                                   (3, 1, 0)])
def test_conv2d_matches_torch(impl, kernel, stride, padding):
  if impl == 'cols' and stride != 1:
    with pytest.raises(ValueError, match='stride 1'):
      conv.conv2d(jnp.zeros((1, 9, 9, 16)), jnp.zeros((kernel, kernel, 16, 12)), stride,
                  padding, impl=impl)
    return
  x = RNG.standard_normal((2, 9, 10, 16)).astype(np.float32)
  w = RNG.standard_normal((12, 16, kernel, kernel)).astype(np.float32)
  ref = _nhwc(torch.nn.functional.conv2d(_nchw(x), torch.tensor(w), stride=stride,
                                         padding=padding))
  got = conv.conv2d(jnp.asarray(x), jnp.asarray(np.transpose(w, (2, 3, 1, 0))), stride,
                    padding, impl=impl)
  np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


# `cols` is stride 1 only (test_conv2d_matches_torch checks that it refuses
# stride 2), so it has no stride-2 backward pass to compare.
@pytest.mark.parametrize('impl,kernel,stride,padding', [
    ('im2col', 3, 1, 1), ('im2col', 4, 2, 1), ('cols', 3, 1, 1)])
def test_conv2d_gradients_match_xla(impl, kernel, stride, padding):
  """The matmul layouts must also agree in the backward pass they exist for."""
  x = jnp.asarray(RNG.standard_normal((2, 8, 8, 16)), jnp.float32)
  w = jnp.asarray(RNG.standard_normal((kernel, kernel, 16, 3)), jnp.float32)
  grads = lambda impl: jax.grad(
      lambda x, w: jnp.sum(jnp.sin(conv.conv2d(x, w, stride, padding, impl=impl))),
      argnums=(0, 1))(x, w)
  for got, ref in zip(grads(impl), grads('xla')):
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)


def test_conv_transpose2d_gradients_match_xla():
  x = jnp.asarray(RNG.standard_normal((2, 5, 6, 7)), jnp.float32)
  w = jnp.asarray(RNG.standard_normal((4, 4, 7, 3)), jnp.float32)
  grads = lambda impl: jax.grad(
      lambda x, w: jnp.sum(jnp.sin(conv.conv_transpose2d(x, w, impl=impl))),
      argnums=(0, 1))(x, w)
  for got, ref in zip(grads('cols'), grads('xla')):
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('impl', ['xla', 'cols'])
def test_conv_transpose2d_matches_torch(impl):
  x = RNG.standard_normal((2, 3, 5, 6, 7)).astype(np.float32)  # two batch axes
  w = RNG.standard_normal((7, 4, 4, 4)).astype(np.float32)  # torch [in, out, kh, kw]
  ref = torch.nn.functional.conv_transpose2d(_nchw(x.reshape(6, 5, 6, 7)), torch.tensor(w),
                                             stride=2, padding=1)
  got = conv.conv_transpose2d(jnp.asarray(x), jnp.asarray(np.transpose(w, (2, 3, 0, 1))),
                              impl=impl)
  assert got.shape == (2, 3, 10, 12, 4)
  np.testing.assert_allclose(np.asarray(got).reshape(6, 10, 12, 4), _nhwc(ref),
                             rtol=1e-5, atol=1e-5)


def test_conv_transpose2d_rejects_input_side_patches():
  with pytest.raises(ValueError, match="impl='cols'"):
    conv.conv_transpose2d(jnp.zeros((1, 4, 4, 3)), jnp.zeros((4, 4, 3, 2)), impl='im2col')
