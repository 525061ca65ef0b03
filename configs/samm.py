"""SAMM, 5 classes (official recipe), 28 LOSO folds."""

from configs import default


def get_config():
  config = default.get_config()
  config.dataset = 'samm/5class'
  return config
