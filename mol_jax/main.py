"""Entry point: `python -m mol_jax.main --config=configs/smic.py --workdir=DIR`.

Any config field can be overridden: `--config.num_train_steps=200`.

Exit codes: `EXIT_CODES` below (docs/EXIT_CODES.md). Errors print one line,
`error: <what>: <fix>`; `--verbose` adds the traceback and the checkpoint library's INFO lines.
"""

import logging as py_logging
import os
import sys
import textwrap

import jax
from absl import app, flags, logging
from ml_collections import config_flags

from mol_jax import config_files, exit_codes, files
from mol_jax import train

FLAGS = flags.FLAGS
EXIT_CODES = (exit_codes.OK, exit_codes.FAILED, exit_codes.USAGE, exit_codes.NO_INPUT,
              exit_codes.INTERRUPTED)
flags.DEFINE_string('workdir', None, 'Directory for checkpoints, logs and results.')
flags.DEFINE_bool('verbose', False, 'Print the traceback of an error, and the checkpoint '
                  "library's INFO lines.")
config_flags.DEFINE_config_file('config', None, 'Training configuration file.',
                                lock_config=True)
flags.mark_flags_as_required(['config', 'workdir'])

_HELP_FLAGS = ('-h', '--help', '-help', '--helpshort', '--helpfull')


def help_text() -> str:
  """What `--help` prints: the command, the configs beside it and the docs."""
  here = os.path.join(os.getcwd(), 'configs')
  configs = sorted(n[:-3] for n in os.listdir(here)
                   if n.endswith('.py') and n not in ('__init__.py', 'default.py')
                   ) if os.path.isdir(here) else []
  listed = (', '.join(f'configs/{n}.py' for n in configs) if configs
            else 'the configs/ folder of a checkout of mol_jax')
  return '\n'.join([
      'usage: python -m mol_jax.main --config=CONFIG.py --workdir=DIR '
      '[--config.FIELD=VALUE ...] [--verbose]',
      '',
      'Trains MOL with leave-one-subject-out folds and writes DIR/results.json,',
      'results.md and each fold model DIR/folds/<subject>/model.',
      '',
      f'configs: {listed}',
      '  configs/demo.py runs on the synthetic set it builds itself; configs/default.py',
      '  documents every field (--config.FIELD=VALUE overrides one).',
      '',
      textwrap.fill(exit_codes.summary(EXIT_CODES), width=80, subsequent_indent='  '),
      '',
      'docs: README.md, docs/TRAINING.md (recipes, options, exit codes), docs/DATA.md',
      '  (building the datasets), docs/INFERENCE.md (predicting on a video).',
  ])


def _fail(message: str, code: int, error: BaseException | None = None):
  verbose = FLAGS.verbose if FLAGS.is_parsed() else '--verbose' in sys.argv
  exit_codes.fail(message, code, error, verbose)


def parse_flags(argv: list[str]) -> list[str]:
  """absl's parser with `--help`, and the config loaded here, so that every
  flag or config error is one line with the exit code documented above."""
  if any(a in _HELP_FLAGS for a in argv[1:]):
    print(help_text())
    sys.exit(0)
  try:
    rest = FLAGS(argv)
    # ml_collections loads the file and applies the overrides lazily: here,
    # during parsing when there are overrides, else on first use.
    FLAGS.config.keys()
    return rest
  except flags.Error as e:
    _fail(f'{e} (python -m mol_jax.main --help)', exit_codes.USAGE)
  except OSError as e:
    _fail(f'--config={config_files.path_from_argv(argv)}: no such config file; configs are '
          'Python files such as configs/smic.py (python -m mol_jax.main --help lists them)',
          exit_codes.USAGE, e)
  except (AttributeError, KeyError) as e:
    name = str(e).strip('\'"')
    _fail(f'{_override_named(argv, name)}: the config has no field {name!r}; '
          'configs/default.py lists every field', exit_codes.USAGE, e)
  except (ValueError, TypeError) as e:
    _fail(f'a --config.* override does not fit its field ({e}); configs/default.py gives '
          'each field its type', exit_codes.USAGE, e)


def _override_named(argv: list[str], name: str) -> str:
  """The command-line override that mentions config field `name`."""
  for arg in argv[1:]:
    if arg.startswith(('--config.', '-config.')) and name in arg.partition('=')[0]:
      return arg
  return f'--config (field {name})'


class _LibraryInfo(py_logging.Filter):
  """Drops the INFO lines of the checkpoint library (Orbax logs a dozen per
  save and restore through absl, as this program does), so that the
  progress bar and lines such as `fold X: resumed at step N` stand out."""

  def filter(self, record: py_logging.LogRecord) -> bool:
    return (record.levelno >= py_logging.WARNING
            or f'{os.sep}orbax{os.sep}' not in record.pathname)


def quiet_checkpoint_library() -> None:
  """Hides the checkpoint library's INFO lines (not its warnings) for the
  rest of the process; the training tools call it unless `--verbose`."""
  py_logging.getLogger('absl').addFilter(_LibraryInfo())


def main(argv):
  if len(argv) > 1:
    _fail(f'unexpected arguments {argv[1:]}: every flag is --name=value '
          '(python -m mol_jax.main --help)', exit_codes.USAGE)
  config = FLAGS.config
  workdir = os.path.abspath(FLAGS.workdir)
  problem = files.folder_problem(FLAGS.workdir, '--workdir')
  if problem:
    _fail(problem, exit_codes.USAGE)
  if not FLAGS.verbose:
    quiet_checkpoint_library()

  dist = config.distributed
  if dist.initialize:
    jax.distributed.initialize(
        coordinator_address=dist.coordinator_address or None,
        num_processes=None if dist.num_processes < 0 else dist.num_processes,
        process_id=None if dist.process_id < 0 else dist.process_id)
  logging.info('process %d of %d; devices: %s', jax.process_index(), jax.process_count(),
               jax.devices())
  try:
    train.train_and_evaluate(config, workdir)
  except train.ConfigError as e:
    _fail(str(e), exit_codes.USAGE, e)
  except FileNotFoundError as e:
    _fail(str(e), exit_codes.NO_INPUT, e)
  except (train.NonFiniteError, train.BuildError) as e:
    _fail(str(e), exit_codes.FAILED, e)
  except KeyboardInterrupt as e:
    # Every fold resumes from its last checkpoint and finished folds are kept.
    where = f'{e}; ' if isinstance(e, train.Interrupted) else ''
    _fail(f'interrupted: {where}run the same command again to resume (finished folds are '
          f'kept, a fold resumes from its last checkpoint in {workdir})',
          exit_codes.INTERRUPTED, e)


if __name__ == '__main__':
  config_files.prepare_command(sys.argv)
  app.run(main, flags_parser=parse_flags)
