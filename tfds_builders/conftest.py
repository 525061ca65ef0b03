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


def pytest_collection_modifyitems(config, items):
  """Drops `test_session`, which the builder tests inherit from TensorFlow's
  TestCase: a context manager, not a test, that TensorFlow itself skips as
  "Not a test" (16 skips in every run otherwise)."""
  kept, dropped = [], []
  for item in items:
    module = getattr(getattr(item, 'function', None), '__module__', '') or ''
    if item.name == 'test_session' and module.startswith('tensorflow.'):
      dropped.append(item)
    else:
      kept.append(item)
  if dropped:
    config.hook.pytest_deselected(items=dropped)
    items[:] = kept
