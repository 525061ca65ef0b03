"""CASME II mapped to 3 classes (labels 0, 1, 2: surprise, positive, negative), 25 LOSO folds."""

from configs import default


def get_config():
  config = default.get_config()
  config.dataset = 'casme2/3class'
  return config
