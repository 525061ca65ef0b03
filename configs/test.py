"""A tiny config for tests: two synthetic subjects, a few steps, on CPU."""

from configs import default


def get_config():
  config = default.get_config()
  config.dataset = 'synthetic_me/small'
  config.build_if_missing = True
  config.batch_size = 2
  config.eval_batch_size = 2
  config.num_train_steps = 2
  config.loss.flow_pairs_per_step = 1
  config.eval_with_flow = False
  config.checkpoint_every_steps = 1
  config.log_every_steps = 1
  config.log_term_grad_norms_every_steps = 0
  config.keep_fold_checkpoints = True
  # One device, so that the tiny batch fits any machine (tests fake 8 CPUs).
  config.mesh.num_devices = 1
  return config
