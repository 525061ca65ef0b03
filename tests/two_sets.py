"""Two synthetic sets read as one collection (protocols and sources tests)."""

from mol_jax.data import sources

TWO = 'synthetic_me/small,synthetic_me/small_b'
ALIASES = ('synthetic_me_small', 'synthetic_me_small_b')


def build(tmp_path_factory) -> str:
  """Both sets built in a fresh data folder; its path."""
  path = str(tmp_path_factory.mktemp('tfds'))
  sources.ensure_built(sources.dataset_names(TWO), path, build_if_missing=True)
  return path
