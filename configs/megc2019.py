"""MEGC 2019 composite set (SMIC-HS + CASME II + SAMM), 3 classes, 68 LOSO folds."""

from configs import default


def get_config():
  config = default.get_config()
  config.dataset = 'megc2019/3class'
  return config
