"""Model checkpoints (`mol_jax.checkpointing`): an ablation variant restores its
architecture, a missing checkpoint is a clear error, and a Ctrl-C during a
save neither loses nor half-writes it."""

import signal

import jax.numpy as jnp
import orbax.checkpoint as ocp
import pytest

from mol_jax import checkpointing
from tests.random_weights import random_model


def test_variant_checkpoint_restores_its_architecture(tmp_path):
  model = random_model(seed=7, use_ccc=False)
  checkpointing.save_model(str(tmp_path / 'm'), model)
  restored = checkpointing.restore_model(str(tmp_path / 'm'))
  assert restored.use_ccc is False and restored.use_fcc is True


def test_missing_checkpoint_is_a_clear_error(tmp_path):
  with pytest.raises(FileNotFoundError, match='not found'):
    checkpointing.restore_model(str(tmp_path / 'absent'))
  (tmp_path / 'empty').mkdir()
  with pytest.raises(FileNotFoundError, match='mol_jax.convert'):
    checkpointing.restore_model(str(tmp_path / 'empty'))


def test_ctrl_c_during_a_save_is_raised_after_it_and_the_save_completes(tmp_path, monkeypatch):
  """The interrupt lands inside Orbax's save (where a terminal's Ctrl-C can
  fall when checkpoints are frequent): it must surface as KeyboardInterrupt
  once the save is handed over, and closing must finish that save."""
  ckpt = checkpointing.TrainCheckpointer(str(tmp_path / 'checkpoints'), save_every_steps=1)
  ckpt.save(1, {'w': jnp.zeros(3)}, None, {})
  save = ocp.CheckpointManager.save

  def interrupted_save(manager, *args, **kwargs):
    signal.raise_signal(signal.SIGINT)
    return save(manager, *args, **kwargs)

  monkeypatch.setattr(ocp.CheckpointManager, 'save', interrupted_save)
  with pytest.raises(KeyboardInterrupt):
    ckpt.save(2, {'w': jnp.ones(3)}, None, {'best': 2})
  monkeypatch.undo()
  assert ckpt.close() == 2
  resumed = checkpointing.TrainCheckpointer(str(tmp_path / 'checkpoints'), save_every_steps=1)
  state, _, history = resumed.restore_or({'w': jnp.zeros(3)}, None)
  resumed.close()
  assert history == {'best': 2} and float(state['w'].sum()) == 3.0
