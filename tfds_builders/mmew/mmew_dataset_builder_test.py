"""mmew builder tests on generated (synthetic-face) dummy data."""

import os

import tensorflow_datasets as tfds

from . import mmew_dataset_builder

_DUMMY = os.path.join(os.path.dirname(__file__), 'dummy_data')


class MmewReleaseLayoutTest(tfds.testing.DatasetBuilderTestCase):
  """The owners' <subject>/<emotion>/<sample> tree + MMEW_Micro_Exp.xlsx in
  3 classes: others (folder repression/) skipped, as are a 5-frame sample,
  an unknown emotion and a sheet row without its folder."""
  DATASET_CLASS = mmew_dataset_builder.Builder
  BUILDER_CONFIG_NAMES_TO_TEST = ['3class']
  EXAMPLE_DIR = os.path.join(_DUMMY, 'release')
  SPLITS = {'S01': 2, 'S02': 1}


class MmewMebLayoutTest(tfds.testing.DatasetBuilderTestCase):
  """MEB's Micro_Expression/<emotion>/<sample> tree, no sheet, in 7 classes:
  others/ and repression/ are both others."""
  DATASET_CLASS = mmew_dataset_builder.Builder
  BUILDER_CONFIG_NAMES_TO_TEST = ['7class']
  EXAMPLE_DIR = os.path.join(_DUMMY, 'release_meb')
  SPLITS = {'S01': 1, 'S02': 1, 'S03': 1}


class MmewMolLayoutTest(tfds.testing.DatasetBuilderTestCase):
  """Official MOL layout in 3 classes."""
  DATASET_CLASS = mmew_dataset_builder.Builder
  BUILDER_CONFIG_NAMES_TO_TEST = ['3class']
  EXAMPLE_DIR = os.path.join(_DUMMY, 'mol')
  SPLITS = {'S01': 1, 'S02': 1}


if __name__ == '__main__':
  tfds.testing.test_main()
