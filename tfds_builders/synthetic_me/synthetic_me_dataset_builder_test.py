"""synthetic_me builder test on a tiny generated set (dummy_data/)."""

import tensorflow_datasets as tfds

from . import synthetic_me_dataset_builder


class SyntheticMeTest(tfds.testing.DatasetBuilderTestCase):
  """Builds from dummy_data/ (1 subject x 3 classes x 1 video of 8-9 frames)."""
  DATASET_CLASS = synthetic_me_dataset_builder.Builder
  BUILDER_CONFIG_NAMES_TO_TEST = ['small']
  SPLITS = {'sy01': 3}


if __name__ == '__main__':
  tfds.testing.test_main()
