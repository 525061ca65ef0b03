"""MMEW micro-expressions, 7 classes (labels 0-6: surprise, happiness,
disgust, fear, anger, sadness, others), one LOSO fold per subject."""

from configs import default


def get_config():
  config = default.get_config()
  config.dataset = 'mmew/7class'
  return config
