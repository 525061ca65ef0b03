"""The file `tfds build tfds_builders/smic` finds; the builder is `mol_jax.data.builders.smic`.

TFDS looks for a builder class defined in this module, so the packaged one is
subclassed here (unregistered: the packaged class holds the name). Its tests
and dummy data lie beside this file.
"""

from mol_jax.data.builders import smic


class Builder(smic.Builder, skip_registration=True):
  """The packaged `smic` builder, as `tfds build` loads it from this folder."""
