"""The file `tfds build tfds_builders/casme2` finds; the builder is `mol_jax.data.builders.casme2`.

TFDS looks for a builder class defined in this module, so the packaged one is
subclassed here (unregistered: the packaged class holds the name). Its tests
and dummy data lie beside this file.
"""

from mol_jax.data.builders import casme2


class Builder(casme2.Builder, skip_registration=True):
  """The packaged `casme2` builder, as `tfds build` loads it from this folder."""
