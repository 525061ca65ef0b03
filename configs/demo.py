"""The embedded demo: LOSO on the synthetic_me set, built on first use.

4 subjects, 3 classes (negative, positive, surprise). Settings that differ
from the official recipe, and why (docs/RESULTS.md has the runs behind them):
- the `demo` build of synthetic_me: one alignment per clip (from its first
  frame), then registration onto the reference face shape (so that every
  subject's brows and mouth sit on the same pixels; without it the head
  learns where the motion is on three training faces and misreads a new
  one), and 3-5 px action-unit motion (1-3 px in `default`), with the same
  nuisance motion;
- the classification loss alone (no flow or landmark term), batch 4, 150
  steps per fold: the flow head makes a step 2.9x as costly, and within the
  15 minutes on a 2-core CPU the updates it costs are worth more than its
  supervision (60 steps with the flow term reached pooled UF1 0.565, 150
  without it 0.875, and 150 with it 0.849 in 17 minutes; docs/RESULTS.md);
  every other config keeps MOL's multi-task loss;
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
  config.num_train_steps = 150
  config.augment.crop_jitter = 0
  config.model.dropout_rate = 0.0
  config.loss.of_weight = 0.0
  config.loss.ldm_weight = 0.0
  config.optimizer.learning_rate = 3e-4
  config.optimizer.schedule = 'cosine'
  config.optimizer.warmup_steps = 10
  config.eval_with_flow = False
  config.eval_every_steps = 50
  config.checkpoint_every_steps = 50
  config.log_every_steps = 5
  config.log_term_grad_norms_every_steps = 0
  return config
