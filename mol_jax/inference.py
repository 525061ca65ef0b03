"""Run a MOL model on clips: one jitted evaluation function, numpy in and out."""

from __future__ import annotations

from typing import Mapping

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from mol_jax.models import FRAME_SIZE, MOL, NUM_FRAMES


@jax.jit
def _forward(graphdef: nnx.GraphDef, state: nnx.State, video: jax.Array) -> dict:
  return nnx.merge(graphdef, state)(video, train=False)


class Predictor:
  """Evaluation-mode MOL with a numpy interface.

  `predict(video)` takes [batch, 8, 128, 128, 1] (or one clip without the
  batch axis, or without the channel axis) normalised float frames and
  returns numpy `logits` [batch, C], `flow` [batch, 7, 128, 128, 2] and
  `landmarks` [batch, 7, 68, 2].
  """

  def __init__(self, model: MOL):
    self.model = model
    self.num_classes = model.num_classes
    self.neighbor_num = model.neighbor_num
    self._graphdef, self._state = nnx.split(model)

  def predict(self, video: np.ndarray) -> dict[str, np.ndarray]:
    video = np.asarray(video, np.float32)
    single = video.ndim in (3, 4) and video.shape[0] == NUM_FRAMES
    if single:
      video = video[None]
    if video.ndim == 4:
      video = video[..., None]
    expected = (NUM_FRAMES, FRAME_SIZE, FRAME_SIZE, 1)
    if video.ndim != 5 or video.shape[1:] != expected:
      raise ValueError(f'video must be [batch, {NUM_FRAMES}, {FRAME_SIZE}, {FRAME_SIZE}, 1] '
                       f'(or one clip without batch), got {np.shape(video)}')
    out = jax.device_get(_forward(self._graphdef, self._state, jnp.asarray(video)))
    out = {k: np.asarray(v) for k, v in out.items()}
    return {k: v[0] for k, v in out.items()} if single else out


def from_official_weights(path: str, num_classes: int | None = None,
                          neighbor_num: int = 4) -> Predictor:
  """Predictor from an official PyTorch `state_dict` (.pth or .npz)."""
  from mol_jax import convert  # pylint: disable=import-outside-toplevel
  state_dict = convert.load_state_dict(path)
  return Predictor(convert.import_official(state_dict, num_classes, neighbor_num, source=path))


def from_checkpoint(directory: str, step: int | None = None) -> Predictor:
  """Predictor from a checkpoint written by `mol_jax.convert` or training."""
  from mol_jax import checkpointing  # pylint: disable=import-outside-toplevel
  return Predictor(checkpointing.load_model(directory, step))


def from_state_dict(state_dict: Mapping[str, np.ndarray], num_classes: int | None = None,
                    neighbor_num: int = 4) -> Predictor:
  from mol_jax import convert  # pylint: disable=import-outside-toplevel
  return Predictor(convert.import_official(state_dict, num_classes, neighbor_num))
