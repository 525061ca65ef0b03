"""fourdme builder tests on generated (synthetic-face, gray) dummy data."""

import os

import tensorflow_datasets as tfds

from . import fourdme_dataset_builder

_DUMMY = os.path.join(os.path.dirname(__file__), 'dummy_data')


class FourdmeReleaseLayoutTest(tfds.testing.DatasetBuilderTestCase):
  """gray_micro/ + the release sheet in 3 classes: repression -> negative,
  others skipped; a two-category Emotion, an unknown emotion, a 5-frame
  clip and a missing folder skipped."""
  DATASET_CLASS = fourdme_dataset_builder.Builder
  BUILDER_CONFIG_NAMES_TO_TEST = ['3class']
  EXAMPLE_DIR = os.path.join(_DUMMY, 'release')
  SPLITS = {'S01': 2, 'S02': 2}


class FourdmeMolLayoutTest(tfds.testing.DatasetBuilderTestCase):
  """Official MOL layout in 5 classes (repression and others kept)."""
  DATASET_CLASS = fourdme_dataset_builder.Builder
  BUILDER_CONFIG_NAMES_TO_TEST = ['5class']
  EXAMPLE_DIR = os.path.join(_DUMMY, 'mol')
  SPLITS = {'S01': 1, 'S02': 2}


if __name__ == '__main__':
  tfds.testing.test_main()
