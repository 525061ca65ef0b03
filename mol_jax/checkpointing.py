"""Orbax checkpoints of MOL models, behind one small interface.

A checkpoint directory is an Orbax `CheckpointManager` directory whose steps
hold a `model` item (parameters and BatchNorm statistics as a nested dict)
and a `model_config` item (JSON: `num_classes`, `neighbor_num`,
`dropout_rate`), so `load_model` rebuilds the model without a config file.
Imported official weights are step 0; training adds its own items beside
these.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp
from flax import nnx

from mol_jax.models import MOL, create_model


def model_config(model: MOL) -> dict[str, Any]:
  return {'num_classes': model.num_classes, 'neighbor_num': model.neighbor_num,
          'dropout_rate': model.mer_3dcnn.dropout_rate}


def model_variables(model: MOL) -> dict:
  """Parameters and BatchNorm statistics as a nested dict of arrays."""
  return nnx.state(model, (nnx.Param, nnx.BatchStat)).to_pure_dict()


def save_model(directory: str, model: MOL, step: int = 0) -> str:
  """Writes `model` as checkpoint `step` of `directory`; returns its path."""
  directory = os.path.abspath(directory)
  with ocp.CheckpointManager(directory) as manager:
    if step in manager.all_steps():
      raise FileExistsError(
          f'{directory} already holds checkpoint step {step}; choose another --out '
          'or delete it')
    manager.save(step, args=ocp.args.Composite(
        model=ocp.args.StandardSave(model_variables(model)),
        model_config=ocp.args.JsonSave(model_config(model))), force=True)
    manager.wait_until_finished()
  return os.path.join(directory, str(step))


def load_model(directory: str, step: int | None = None) -> MOL:
  """Restores a model written by `save_model` or by training.

  Args:
    directory: checkpoint directory.
    step: which step; default the latest.
  """
  directory = os.path.abspath(directory)
  if not os.path.isdir(directory):
    raise FileNotFoundError(f'checkpoint directory not found: {directory}')
  with ocp.CheckpointManager(directory) as manager:
    step = manager.latest_step() if step is None else step
    if step is None or step not in manager.all_steps():
      raise FileNotFoundError(
          f'no checkpoint{"" if step is None else f" step {step}"} in {directory} '
          f'(steps found: {list(manager.all_steps())}); write one with python -m mol_jax.convert')
    config = manager.restore(step, args=ocp.args.Composite(
        model_config=ocp.args.JsonRestore()))['model_config']
    abstract = nnx.eval_shape(lambda: create_model(**config))
    target = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), model_variables(abstract))
    restored = manager.restore(step, args=ocp.args.Composite(
        model=ocp.args.StandardRestore(target)))['model']
  model = create_model(**config)
  state = nnx.state(model, (nnx.Param, nnx.BatchStat))
  state.replace_by_pure_dict(restored)
  nnx.update(model, state)
  return model
