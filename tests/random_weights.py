"""An untrained MOL in seconds, for tests that only need some valid weights."""

import jax
import numpy as np
from flax import nnx

from mol_jax.model import mol as models


def random_model(num_classes: int = 3, seed: int = 0, **kwargs) -> models.MOL:
  """A MOL with random weights (He-like scale, BatchNorm at identity).

  `models.create_model` runs ~90 initialisers, each compiled on its own (a
  minute on a 2-core CPU); this fills an abstract model from numpy instead.
  """
  model = models.abstract_model(num_classes, **kwargs)
  state = nnx.state(model, (nnx.Param, nnx.BatchStat))
  rng = np.random.default_rng(seed)

  def fill(path, leaf):
    name = str(path[-1].key)
    if name in ('var', 'scale'):
      return np.ones(leaf.shape, leaf.dtype)
    if name == 'mean' or 'bias' in name or len(leaf.shape) < 2:
      return np.zeros(leaf.shape, leaf.dtype)
    return rng.normal(0, 1 / np.sqrt(np.prod(leaf.shape[:-1])), leaf.shape).astype(leaf.dtype)

  pure = jax.tree_util.tree_map_with_path(fill, state.to_pure_dict())
  state.replace_by_pure_dict(jax.tree.map(jax.numpy.asarray, pure))
  nnx.update(model, state)
  return model
