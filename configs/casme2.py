"""CASME II, 5 classes (official recipe), 25 LOSO folds."""

from configs import default


def get_config():
  config = default.get_config()
  config.dataset = 'casme2/5class'
  return config
