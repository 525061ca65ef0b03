"""Entry point: `python -m mol_jax.main --config=configs/smic.py --workdir=DIR`.

Any config field can be overridden: `--config.num_train_steps=200`.
"""

import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from mol_jax import files

FLAGS = flags.FLAGS
flags.DEFINE_string('workdir', None, 'Directory for checkpoints, logs and results.')
config_flags.DEFINE_config_file('config', None, 'Training configuration file.',
                                lock_config=True)
flags.mark_flags_as_required(['config', 'workdir'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  import jax  # pylint: disable=import-outside-toplevel
  from mol_jax import train  # pylint: disable=import-outside-toplevel

  config = FLAGS.config
  dist = config.distributed
  if dist.initialize:
    jax.distributed.initialize(
        coordinator_address=dist.coordinator_address or None,
        num_processes=None if dist.num_processes < 0 else dist.num_processes,
        process_id=None if dist.process_id < 0 else dist.process_id)
  logging.info('process %d of %d; devices: %s', jax.process_index(), jax.process_count(),
               jax.devices())
  try:
    train.train_and_evaluate(config, os.path.abspath(FLAGS.workdir))
  except (FileNotFoundError, train.ConfigError, train.NonFiniteError) as e:
    logging.error('%s', e)
    raise SystemExit(f'error: {e}') from None


if __name__ == '__main__':
  root = files.config_root(sys.argv)
  if root and root not in sys.path:
    sys.path.insert(0, root)
  app.run(main)
