"""megc2019 builder test: one database per layout, generated dummy data."""

import tensorflow_datasets as tfds

from . import megc2019_dataset_builder


class Megc2019Test(tfds.testing.DatasetBuilderTestCase):
  """casme2 (release, sheet), samm (MOL layout), smic (release folders)."""
  DATASET_CLASS = megc2019_dataset_builder.Builder
  SPLITS = {'casme2_01': 1, 'samm_006': 1, 'smic_s1': 1}  # bogus emotion, Other skipped.


if __name__ == '__main__':
  tfds.testing.test_main()
