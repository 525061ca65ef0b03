"""The embedded demo: LOSO on the synthetic_me set, built on first use.

4 subjects, 3 classes (negative, positive, surprise). Settings that differ
from the official recipe, and why:
- one alignment per clip (`default_per_clip`): the official per-frame
  alignment adds landmark jitter of the same size as the 1-3 px synthetic
  motion;
- the flow head is trained on 1 random pair of 7 per step (an unbiased
  estimate of the same loss at a seventh of the flow head's cost);
- evaluation skips the flow head (class logits do not depend on it);
- a higher learning rate with a cosine decay, so that a few hundred steps
  per fold suffice.
"""

from configs import default


def get_config():
  config = default.get_config()
  config.dataset = 'synthetic_me/default_per_clip'
  config.build_if_missing = True
  config.batch_size = 8
  config.eval_batch_size = 8
  config.num_train_steps = 150
  config.loss.flow_pairs_per_step = 1
  config.loss.ldm_weight = 0.1
  config.optimizer.learning_rate = 3e-4
  config.optimizer.schedule = 'cosine'
  config.optimizer.warmup_steps = 10
  config.eval_with_flow = False
  config.checkpoint_every_steps = 50
  config.log_every_steps = 5
  config.log_term_grad_norms_every_steps = 0
  return config
