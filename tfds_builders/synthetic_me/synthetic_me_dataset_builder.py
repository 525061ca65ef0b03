"""The file `tfds build tfds_builders/synthetic_me` finds; the builder is `mol_jax.data.builders.synthetic_me`.

TFDS looks for a builder class defined in this module, so the packaged one is
subclassed here (unregistered: the packaged class holds the name). Its tests
and dummy data lie beside this file.
"""

from mol_jax.data.builders import synthetic_me


class Builder(synthetic_me.Builder, skip_registration=True):
  """The packaged `synthetic_me` builder, as `tfds build` loads it from this folder."""
