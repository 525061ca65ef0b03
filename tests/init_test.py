"""`import mol_jax` (the package's own __init__): the prediction API, without
the dataset machinery it does not need."""

import subprocess
import sys


def test_import_mol_jax_does_not_import_tensorflow_datasets():
  """TFDS is read only by the alignment fallback for checkpoints older than
  their `alignment` metadata (`Predictor.model_alignment`), which imports it
  when it runs; importing it on `import mol_jax` cost start-up time."""
  proc = subprocess.run(
      [sys.executable, '-c', 'import sys, mol_jax; '
       'assert mol_jax.from_checkpoint and mol_jax.from_official_weights; '
       'print(sorted(m for m in sys.modules if m.split(".")[0] == "tensorflow_datasets"))'],
      capture_output=True, text=True, timeout=300, check=True)
  assert proc.stdout.strip() == '[]', proc.stdout[:2000]


def test_alignment_of_a_checkpoint_without_it_still_comes_from_its_dataset():
  """The fallback that now imports the builders when it runs: older
  checkpoints name only their dataset, whose builder config says how its
  clips were aligned."""
  import types  # pylint: disable=g-import-not-at-top
  from mol_jax import inference  # pylint: disable=g-import-not-at-top
  alignment = lambda metadata: inference.Predictor.model_alignment(
      types.SimpleNamespace(metadata=metadata))
  assert alignment({'alignment': 'per_clip', 'dataset': 'synthetic_me/demo'}) == (
      'per_clip', 'checkpoint metadata')
  assert alignment({'dataset': 'synthetic_me/demo'}) == ('registered', 'dataset synthetic_me/demo')
  assert alignment({'dataset': 'samm/3class_per_clip'})[0] == 'per_clip'
  assert alignment({})[0] == 'per_frame'
