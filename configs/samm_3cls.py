"""SAMM mapped to 3 classes, 28 LOSO folds."""

from configs import default


def get_config():
  config = default.get_config()
  config.dataset = 'samm/3class'
  return config
