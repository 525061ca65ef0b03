"""The file `tfds build tfds_builders/megc2019` finds; the builder is `mol_jax.data.builders.megc2019`."""

from mol_jax.data.builders.megc2019 import Builder  # pylint: disable=unused-import
