"""The file `tfds build tfds_builders/fourdme` finds; the builder: `mol_jax.data.builders.fourdme`.

TFDS looks for a builder class defined in this module, so the packaged one is
subclassed here (unregistered: the packaged class holds the name). Its tests
and dummy data lie beside this file.
"""

from mol_jax.data.builders import fourdme


class Builder(fourdme.Builder, skip_registration=True):
  """The packaged `fourdme` builder, as `tfds build` loads it from this folder."""
