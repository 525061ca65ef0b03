"""4DME (gray 2-D frames), 5 classes (labels 0-4: surprise, positive,
negative, repression, others), one LOSO fold per subject."""

from configs import default


def get_config():
  config = default.get_config()
  config.dataset = 'fourdme/5class'
  return config
