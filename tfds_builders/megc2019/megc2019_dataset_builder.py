"""The file `tfds build tfds_builders/megc2019` finds; the builder is `mol_jax.data.builders.megc2019`.

TFDS looks for a builder class defined in this module, so the packaged one is
subclassed here (unregistered: the packaged class holds the name). Its tests
and dummy data lie beside this file.
"""

from mol_jax.data.builders import megc2019


class Builder(megc2019.Builder, skip_registration=True):
  """The packaged `megc2019` builder, as `tfds build` loads it from this folder."""
