"""The file `tfds build tfds_builders/smic` finds; the builder is `mol_jax.data.builders.smic`."""

from mol_jax.data.builders.smic import Builder  # pylint: disable=unused-import
