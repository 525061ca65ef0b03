"""The file `tfds build tfds_builders/casme3` finds; the builder is `mol_jax.data.builders.casme3`.

TFDS looks for a builder class defined in this module, so the packaged one is
subclassed here (unregistered: the packaged class holds the name). Its tests
and dummy data lie beside this file.
"""

from mol_jax.data.builders import casme3


class Builder(casme3.Builder, skip_registration=True):
  """The packaged `casme3` builder, as `tfds build` loads it from this folder."""
