"""samm builder tests on generated (synthetic-face) dummy data."""

import os

import tensorflow_datasets as tfds

from . import samm_dataset_builder

_DUMMY = os.path.join(os.path.dirname(__file__), 'dummy_data')


class SammMolLayoutTest(tfds.testing.DatasetBuilderTestCase):
  """Official MOL layout, 3 classes (Other skipped, Disgust -> negative)."""
  DATASET_CLASS = samm_dataset_builder.Builder
  BUILDER_CONFIG_NAMES_TO_TEST = ['3class']
  EXAMPLE_DIR = os.path.join(_DUMMY, 'mol')
  SPLITS = {'006': 2, '007': 2}


class SammReleaseLayoutTest(tfds.testing.DatasetBuilderTestCase):
  """Release layout, sheet header on row 14; 5 classes (Disgust skipped)."""
  DATASET_CLASS = samm_dataset_builder.Builder
  BUILDER_CONFIG_NAMES_TO_TEST = ['5class']
  EXAMPLE_DIR = os.path.join(_DUMMY, 'release')
  SPLITS = {'006': 2, '007': 2}


if __name__ == '__main__':
  tfds.testing.test_main()
