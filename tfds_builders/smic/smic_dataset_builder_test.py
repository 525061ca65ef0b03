"""smic builder tests on generated (synthetic-face) dummy data."""

import os

import tensorflow_datasets as tfds

from . import smic_dataset_builder

_DUMMY = os.path.join(os.path.dirname(__file__), 'dummy_data')


class SmicMolLayoutTest(tfds.testing.DatasetBuilderTestCase):
  """Official MOL layout; an unknown emotion, a 4-frame and an empty video skipped."""
  DATASET_CLASS = smic_dataset_builder.Builder
  EXAMPLE_DIR = os.path.join(_DUMMY, 'mol')
  SPLITS = {'s1': 1, 's2': 2}


class SmicReleaseLayoutTest(tfds.testing.DatasetBuilderTestCase):
  """Release layout HS/<subject>/micro/<emotion>/<clip>."""
  DATASET_CLASS = smic_dataset_builder.Builder
  EXAMPLE_DIR = os.path.join(_DUMMY, 'release')
  SPLITS = {'s1': 1, 's2': 2}
  BUILDER_CONFIG_NAMES_TO_TEST = ['3class_per_clip']


if __name__ == '__main__':
  tfds.testing.test_main()
