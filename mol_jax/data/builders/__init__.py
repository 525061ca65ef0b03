"""The project's TFDS builders, one sub-package each (`builder.BUILDER_NAMES`).

Each holds its `Builder` class with its README and citation, so that an
installed package builds every set; `tfds_builders/<name>/` in the checkout
is the thin file that `tfds build` finds, with the builder's tests.
"""
