"""The file `tfds build tfds_builders/synthetic_me` finds; the builder is `mol_jax.data.builders.synthetic_me`."""

from mol_jax.data.builders.synthetic_me import Builder  # pylint: disable=unused-import
