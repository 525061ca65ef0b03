"""The file `tfds build tfds_builders/mmew` finds; the builder is `mol_jax.data.builders.mmew`.

TFDS looks for a builder class defined in this module, so the packaged one is
subclassed here (unregistered: the packaged class holds the name). Its tests
and dummy data lie beside this file.
"""

from mol_jax.data.builders import mmew


class Builder(mmew.Builder, skip_registration=True):
  """The packaged `mmew` builder, as `tfds build` loads it from this folder."""
