"""The file `tfds build tfds_builders/samm` finds; the builder is `mol_jax.data.builders.samm`.

TFDS looks for a builder class defined in this module, so the packaged one is
subclassed here (unregistered: the packaged class holds the name). Its tests
and dummy data lie beside this file.
"""

from mol_jax.data.builders import samm


class Builder(samm.Builder, skip_registration=True):
  """The packaged `samm` builder, as `tfds build` loads it from this folder."""
