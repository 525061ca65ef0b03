"""casme3 builder tests on generated (synthetic-face) dummy data."""

import os

import tensorflow_datasets as tfds

from . import casme3_dataset_builder

_DUMMY = os.path.join(os.path.dirname(__file__), 'dummy_data')


class Casme3ReleaseLayoutTest(tfds.testing.DatasetBuilderTestCase):
  """Part A as released: three micro-expressions read out of one task video
  (spNO1_a, spNO1_a2, and spNO1_a3, whose 5 frames are stretched to 8), an
  offset corrected from the owners' full file (spNO40_e); a 1-frame range,
  an unknown emotion, a missing folder and two unusable frame ranges
  skipped; 3 classes (others skipped)."""
  DATASET_CLASS = casme3_dataset_builder.Builder
  BUILDER_CONFIG_NAMES_TO_TEST = ['3class']
  EXAMPLE_DIR = os.path.join(_DUMMY, 'release')
  SPLITS = {'spNO1': 3, 'spNO2': 1, 'spNO40': 1}  # spNO2_j is others.


class Casme3Release7ClassTest(tfds.testing.DatasetBuilderTestCase):
  """The same release in 7 classes: others (the upper-case task J) kept."""
  DATASET_CLASS = casme3_dataset_builder.Builder
  BUILDER_CONFIG_NAMES_TO_TEST = ['7class']
  EXAMPLE_DIR = os.path.join(_DUMMY, 'release')
  SPLITS = {'spNO1': 3, 'spNO2': 2, 'spNO40': 1}


class Casme3MolLayoutTest(tfds.testing.DatasetBuilderTestCase):
  """Official MOL layout in 4 classes; a 6-frame video stretched to 8, an
  unknown emotion and a 1-frame video skipped."""
  DATASET_CLASS = casme3_dataset_builder.Builder
  BUILDER_CONFIG_NAMES_TO_TEST = ['4class']
  EXAMPLE_DIR = os.path.join(_DUMMY, 'mol')
  SPLITS = {'spNO1': 1, 'spNO2': 3}  # positive; negative (2) and others.


if __name__ == '__main__':
  tfds.testing.test_main()
