"""casme2 builder tests on generated (synthetic-face) dummy data."""

import os

import tensorflow_datasets as tfds

from . import casme2_dataset_builder

_DUMMY = os.path.join(os.path.dirname(__file__), 'dummy_data')


class Casme2MolLayoutTest(tfds.testing.DatasetBuilderTestCase):
  """Official MOL layout; skips an unknown emotion, a 5-frame and an empty video."""
  DATASET_CLASS = casme2_dataset_builder.Builder
  BUILDER_CONFIG_NAMES_TO_TEST = ['5class']
  EXAMPLE_DIR = os.path.join(_DUMMY, 'mol')
  SPLITS = {'01': 2, '02': 2}  # fear is not a 5-class label.


class Casme2ReleaseLayoutTest(tfds.testing.DatasetBuilderTestCase):
  """Release layout with a coding sheet; 3 classes (others skipped)."""
  DATASET_CLASS = casme2_dataset_builder.Builder
  BUILDER_CONFIG_NAMES_TO_TEST = ['3class']
  EXAMPLE_DIR = os.path.join(_DUMMY, 'release')
  SPLITS = {'01': 2, '02': 2}  # repression, fear -> negative.


if __name__ == '__main__':
  tfds.testing.test_main()
