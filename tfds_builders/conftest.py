"""pytest setup for the builder tests beside each builder."""

import os

import pytest

# Build the tiny dummy sets in the test process: a process pool would cost
# more to start (each worker imports the package and loads the 100 MB dlib
# model) than the few clips take. The pool is tested in tests/.
os.environ.setdefault('MOL_JAX_NUM_WORKERS', '0')


@pytest.fixture(autouse=True)
def _tfrecord_builds(monkeypatch):
  """TFDS's DatasetBuilderTestCase reads the build back with `as_dataset`
  (tf.data), which reads tfrecord only; our builds default to array_record.
  A fixture, not the environment of the whole session: tests/ build
  array_record sets in the same workers."""
  monkeypatch.setenv('MOL_JAX_FILE_FORMAT', 'tfrecord')
