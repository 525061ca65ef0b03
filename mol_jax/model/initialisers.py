"""Training-time weight choices that are not part of the network.

Each function changes weights a training run starts from; the network
computes the same function of its weights either way. `mol_jax.train`
applies them when the config asks.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from mol_jax.model.mol import MOL


def landmarks_at_mean_shape(model: MOL, mean_landmarks) -> MOL:
  """Starts the landmark head as the fixed mean-shape predictor.

  The head regresses pixel coordinates of order 10-120 from a last layer
  whose output starts near 0; AdamW moves each weight by about the learning
  rate per step, so the official initialisation spends its first ~50 steps
  growing the output to the face's scale, and its large gradient meanwhile
  reaches the shared trunk. With the last layer's bias at the training
  clips' mean shape and its kernel at 0, step 0 predicts the mean face and
  training learns the residuals.

  Args:
    model: the network.
    mean_landmarks: [68, 2] or [pairs, 68, 2] (x, y) crop pixels (the mean
      over pairs is taken), e.g. `input_pipeline.mean_landmarks`.
  """
  mean = jnp.asarray(mean_landmarks, jnp.float32)
  if mean.ndim == 3:
    mean = mean.mean(0)
  fc2 = model.ldm_predictor.fc2
  # `LandmarkHead` reads its 136 outputs as (point, coordinate).
  fc2.bias[...] = mean.reshape(fc2.bias[...].shape)
  fc2.kernel[...] = jnp.zeros_like(fc2.kernel[...])
  return model


def flow_at_zero(model: MOL) -> MOL:
  """Starts the flow head as the zero-flow predictor.

  The official random initialisation makes the head's output random flow
  of the size of the real motion (about 0.2-0.3 px), which training first
  has to unlearn; with the last prediction layer (`predict_flow0`, no bias)
  at 0 the head starts at zero flow, the best guess for a mostly still face.
  """
  kernel = model.flownet.predict_flow0.kernel
  kernel[...] = jnp.zeros_like(kernel[...])
  return model


# Layers that are not part of the official network: weights without them
# (official weights, or a checkpoint of a model built without the option)
# leave them at their initialisation.
OPTIONAL_LAYERS = ('flow_refine',)


def _flat(tree: dict, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
  """A nested dict of arrays as {path: array}."""
  out = {}
  for key, value in tree.items():
    path = prefix + (str(key),)
    if isinstance(value, dict):
      out.update(_flat(value, path))
    else:
      out[path] = value
  return out


def weights_mismatch(model: MOL, weights: dict) -> str | None:
  """What keeps `weights` from loading into `model`, in one line; None if they load.

  Args:
    model: the network to fill (abstract or not).
    weights: parameters and BatchNorm statistics as a nested dict
      (`checkpointing.model_variables`).

  Layers of `OPTIONAL_LAYERS` that `weights` lacks are not a mismatch: they
  keep the model's initialisation (`load_weights`).
  """
  expected = {path: tuple(np.shape(v)) for path, v in _flat(
      nnx.state(model, (nnx.Param, nnx.BatchStat)).to_pure_dict()).items()}
  given = {path: tuple(np.shape(v)) for path, v in _flat(weights).items()}
  extra = sorted(set(given) - set(expected))
  if extra:
    first = extra[0][0]
    if first in OPTIONAL_LAYERS:
      return (f'they hold the {first} layers, which the model is built without (the checkpoint '
              f'was trained with config.model.flow_refinement=True)')
    if first in ('fcc_1', 'fcc_2', 'ccc_1', 'ccc_2'):
      return (f'they hold {first}, which the model is built without '
              f'(config.model.use_{first[:3]}=False)')
    return f'they hold {"/".join(extra[0])}, which the model does not have'
  missing = sorted(p for p in set(expected) - set(given) if p[0] not in OPTIONAL_LAYERS)
  if missing:
    first = missing[0][0]
    if first in ('fcc_1', 'fcc_2', 'ccc_1', 'ccc_2'):
      return (f'they lack {first}: the checkpoint was trained with '
              f'config.model.use_{first[:3]}=False')
    return f'they lack {"/".join(missing[0])} ({len(missing)} arrays in all)'
  for path in sorted(given):
    if given[path] != expected[path]:
      if path[:2] == ('mer_3dcnn', 'fc2'):
        # The class layer's kernel [in, classes] and bias [classes].
        return (f'they classify {given[path][-1]} classes, the model (config.dataset) '
                f'{expected[path][-1]}')
      return (f'{"/".join(path)} has shape {given[path]} in them, the model needs '
              f'{expected[path]}')
  return None


def load_weights(model: MOL, weights: dict) -> tuple[str, ...]:
  """Starts `model` from `weights` (e.g. a checkpoint's, for `config.init_from`).

  Every parameter and BatchNorm statistic that `weights` holds replaces the
  model's; layers of `OPTIONAL_LAYERS` that it lacks keep their
  initialisation (e.g. official weights in a model with the flow
  refinement, whose last layer starts at zero, so the model starts as
  exactly the official one).

  Args:
    model: the network, initialised.
    weights: nested dict as `checkpointing.model_variables`.

  Returns:
    The top-level layers that kept their initialisation.

  Raises:
    ValueError: `weights_mismatch`'s line.
  """
  problem = weights_mismatch(model, weights)
  if problem is not None:
    raise ValueError(problem)
  state = nnx.state(model, (nnx.Param, nnx.BatchStat))
  current = state.to_pure_dict()
  kept = tuple(name for name in OPTIONAL_LAYERS if name in current and name not in weights)
  merged = dict(current)
  merged.update({k: jax.tree.map(jnp.asarray, v) for k, v in weights.items()})
  state.replace_by_pure_dict(merged)
  nnx.update(model, state)
  return kept
