"""The embedded demo: LOSO on the synthetic_me set, built on first use.

4 subjects, 3 classes (negative, positive, surprise). Settings that differ
from the official recipe, and why (docs/RESULTS.md has the runs behind them):
- the `demo` build of synthetic_me: one alignment per clip and 3-5 px
  action-unit motion (1-3 px in `default`), with the same nuisance motion;
- the classification loss only (of_weight = ldm_weight = 0): on a 2-core CPU
  the flow head triples the cost of a step, and in single-fold runs of a few
  hundred steps the extra terms slowed learning of the class; the two heads
  are then frozen, and evaluation skips the flow head (class logits do not
  depend on it);
- training crops are the centred evaluation crop (`augment.crop_jitter=0`;
  the official random offsets shift the whole aligned face by up to 8 px,
  more than the 3-5 px motion that carries the class, and kept the class
  from being learnt within 150 steps);
- no dropout and a cosine-decayed learning rate, so that a short run starts
  to generalise; 100 steps per fold (docs/RESULTS.md has the time).
The training options that single-fold runs did not support (tied pair
streams, zero-mean time taps, stratified batches, flips) stay off here.
"""

from configs import default


def get_config():
  config = default.get_config()
  config.dataset = 'synthetic_me/demo'
  config.build_if_missing = True
  config.batch_size = 8
  config.eval_batch_size = 8
  config.num_train_steps = 100
  config.augment.crop_jitter = 0
  config.model.dropout_rate = 0.0
  config.loss.of_weight = 0.0
  config.loss.ldm_weight = 0.0
  config.loss.flow_pairs_per_step = 1
  config.optimizer.learning_rate = 3e-4
  config.optimizer.schedule = 'cosine'
  config.optimizer.warmup_steps = 10
  config.eval_with_flow = False
  config.checkpoint_every_steps = 50
  config.log_every_steps = 5
  config.log_term_grad_norms_every_steps = 0
  return config
