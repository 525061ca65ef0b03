"""The file `tfds build tfds_builders/casme2` finds; the builder is `mol_jax.data.builders.casme2`."""

from mol_jax.data.builders.casme2 import Builder  # pylint: disable=unused-import
