"""The file `tfds build tfds_builders/samm` finds; the builder is `mol_jax.data.builders.samm`."""

from mol_jax.data.builders.samm import Builder  # pylint: disable=unused-import
