"""Model checkpoints (`mol_jax.checkpointing`): an ablation variant restores its
architecture, and a missing checkpoint is a clear error."""

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
