"""`configs/test.py` with overrides, for tests that train or validate a run."""

from configs import test as test_config


def tiny_config(data_dir, **overrides):
  """The tiny test config on `data_dir`, with dotted-name overrides, e.g.
  `tiny_config(d, **{'optimizer.learning_rate': 1e-3})`."""
  config = test_config.get_config()
  config.data_dir = data_dir
  for key, value in overrides.items():
    node = config
    *parents, leaf = key.split('.')
    for parent in parents:
      node = getattr(node, parent)
    setattr(node, leaf, value)
  return config
