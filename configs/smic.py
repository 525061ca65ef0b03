"""SMIC-HS, 3 classes (labels 0, 1, 2: surprise, positive, negative), 16 LOSO folds."""

from configs import default


def get_config():
  config = default.get_config()
  config.dataset = 'smic/3class'
  return config
