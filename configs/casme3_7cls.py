"""CAS(ME)^3 Part A, 7 classes (labels 0-6: surprise, happiness, disgust,
fear, anger, sadness, others), one LOSO fold per subject (up to 94: the
subjects of the v2 label sheet)."""

from configs import default


def get_config():
  config = default.get_config()
  config.dataset = 'casme3/7class'
  return config
