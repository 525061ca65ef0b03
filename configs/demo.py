"""The embedded demo: LOSO on the synthetic_me set, built on first use.

4 subjects, 3 classes (negative, positive, surprise). Settings that differ
from the official recipe, and why (docs/RESULTS.md has the runs behind them):
- the `demo` build of synthetic_me: one alignment per clip (from its first
  frame) and 3-5 px action-unit motion (1-3 px in `default`), with the same
  nuisance motion;
- MOL's flow term (of_weight 10, on 1 random frame pair per step) without
  the landmark term: on held-out faces the flow supervision was the one
  change that lifted the class above chance, and the landmark term alone
  did not; evaluation skips the flow head (class logits do not depend on
  it);
- batch 4 and 60 steps per fold: the flow head makes a step 2.9x as costly,
  and this is what fits the 15 minutes on a 2-core CPU;
- training crops are the centred evaluation crop (`augment.crop_jitter=0`;
  the official random offsets shift the whole aligned face by up to 8 px,
  more than the 3-5 px motion that carries the class, and keep the class
  from being fitted within the demo's steps);
- no dropout and a cosine-decayed learning rate, so that a short run starts
  to generalise.
The training options that single-fold runs did not support (tied pair
streams, zero-mean time taps, still-blind head, stratified batches, flips,
zoom) stay off here.
"""

from configs import default


def get_config():
  config = default.get_config()
  config.dataset = 'synthetic_me/demo'
  config.build_if_missing = True
  config.batch_size = 4
  config.eval_batch_size = 8
  config.num_train_steps = 60
  config.augment.crop_jitter = 0
  config.model.dropout_rate = 0.0
  config.loss.of_weight = 10.0
  config.loss.ldm_weight = 0.0
  config.loss.flow_pairs_per_step = 1
  config.optimizer.learning_rate = 3e-4
  config.optimizer.schedule = 'cosine'
  config.optimizer.warmup_steps = 10
  config.eval_with_flow = False
  config.eval_every_steps = 30
  config.checkpoint_every_steps = 50
  config.log_every_steps = 5
  config.log_term_grad_norms_every_steps = 0
  return config
