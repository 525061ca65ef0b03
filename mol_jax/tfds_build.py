"""`tfds build` without TensorFlow, and without Apache Beam unless asked.

Usage (the flags of `tfds build`, plus ours, listed below):

  python -m mol_jax.tfds_build smic \
      --manual_dir=<folder received> --data_dir=<output> \
      [--config=3class] [--max_examples_per_split=N] [--overwrite] \
      [--num_workers=N] [--upsample=1] [--log_level=INFO] \
      [--beam_pipeline_options=OPTION=VALUE,...]

The dataset is a project builder's name (casme2, casme3, fourdme, megc2019,
mmew, samm, smic, synthetic_me: `mol_jax.data.builders`, so an installed
package needs no checkout), with its config as `--config=NAME` or
`NAME/CONFIG`, or, as with `tfds build`, a builder folder such as
`tfds_builders/smic`.

The `tfds` console script imports TensorFlow (and Beam); its `build`
sub-command alone does not, so it is driven here directly. Without
`--config` the builder's first config is built (the one `configs/<name>.py`
trains on), not every config as `tfds build` does. The output format is
`array_record` (readable with `tfds.data_source` and grain) unless
`--file_format` says otherwise, here and with `tfds build`.

On Apache Beam (`pip install apache-beam`): `--beam_pipeline_options`, as
with `tfds build`, is a comma-separated list of Beam pipeline options without
their `--`. The clips are then pre-processed by the runner's workers, one
clip per element (`mol_jax.data.beam_build`), and `--num_workers` has no
effect. On this machine,

  --beam_pipeline_options=runner=FnApiRunner,direct_num_workers=4,direct_running_mode=multi_processing

runs 4 worker processes (`runner=DirectRunner` first tries Beam's Prism
runner, which it downloads from the internet and which runs the workers
inside this process). A cluster runner (Dataflow, Flink, Spark) takes its
own options: docs/DATA.md, "Preparation on Apache Beam".

Our flags:
  --num_workers: pre-processing processes (default: all cores; 0: in process).
  --upsample: dlib HOG detector upsampling (default 1, the official value).
  --log_level: Python logging level (default INFO).
  --verbose: print the traceback of an error.

Exit codes (docs/EXIT_CODES.md): 0 built; 1 the build failed (one line says
why); 2 `--beam_pipeline_options` without Beam installed; 3 the raw data is
missing (`--manual_dir` absent or empty: the licensed copy goes there).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from typing import Sequence

from absl import flags

from mol_jax import exit_codes
from mol_jax.data import builder


def _split_our_flags(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
  parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
  parser.add_argument('--num_workers', type=int, default=None)
  parser.add_argument('--upsample', type=int, default=None)
  parser.add_argument('--log_level', default='INFO')
  parser.add_argument('--verbose', action='store_true')
  return parser.parse_known_args(list(argv))


def _flag_value(argv: Sequence[str], name: str) -> str | None:
  for i, arg in enumerate(argv):
    if arg == name and i + 1 < len(argv):
      return argv[i + 1]
    if arg.startswith(name + '='):
      return arg.partition('=')[2]
  return None


def _datasets(argv: Sequence[str]) -> list[str]:
  return [a for a in argv if not a.startswith('-')]


def _builder_of(argv: Sequence[str]):
  """The project builder class named by a builder folder (`tfds_builders/smic`)
  or a name (`smic`, `smic/3class`), or None."""
  names = [os.path.basename(os.path.normpath(a)) if os.path.isdir(a) else a.split('/')[0]
           for a in _datasets(argv)]
  return next((c for c in map(builder.builder_class, names) if c is not None), None)


def with_default_config(argv: Sequence[str]) -> list[str]:
  """`argv` with `--config=<the builder's first config>` when it names none.

  `tfds build` without a config builds every config of the builder, one
  after another (hours each on real data); the first is the one the
  dataset's training config (`configs/<name>.py`) reads, so that is the one
  built, and the line printed says how to build another.
  """
  argv = list(argv)
  datasets = _datasets(argv)
  cls = _builder_of(argv)
  given = any(a.split('=')[0] in ('--config', '--config_idx') for a in argv) or any(
      '/' in d and not os.path.exists(d) for d in datasets)
  if given or cls is None or not getattr(cls, 'BUILDER_CONFIGS', None):
    return argv
  names = [c.name for c in cls.BUILDER_CONFIGS]
  config_file = cls.training_config_file()
  trains = f', the one configs/{config_file} trains on' if config_file else ''
  print(f'building {cls.name}/{names[0]}{trains}; --config=NAME builds another: '
        f'{", ".join(names[1:])}', file=sys.stderr, flush=True)
  return argv + [f'--config={names[0]}']


def check_manual_dir(argv: Sequence[str]) -> None:
  """A given `--manual_dir` that is missing or empty ends the command
  before TFDS creates any folder, with the builder's own instructions."""
  manual = _flag_value(argv, '--manual_dir')
  if manual is None:
    return
  if os.path.isdir(manual) and os.listdir(manual):
    return
  cls = _builder_of(argv)
  instructions = ' '.join((getattr(cls, 'MANUAL_DOWNLOAD_INSTRUCTIONS', '') or '').split())
  # Its first sentences (who grants the data), without the layout list.
  why = instructions[:instructions.rfind('. ', 0, 300) + 1] if '. ' in instructions else ''
  state = 'is empty' if os.path.isdir(manual) else 'no such folder'
  exit_codes.fail(f'--manual_dir={manual}: {state}. {why + " " if why else ""}Pass the folder '
                  'that holds your copy as --manual_dir (its layouts: docs/DATA.md)',
                  exit_codes.NO_INPUT)


def check_beam(argv: Sequence[str], ours: argparse.Namespace) -> None:
  """`--beam_pipeline_options` without Beam installed ends the command:
  `tfds build` would ignore the options and build without Beam."""
  if _flag_value(argv, '--beam_pipeline_options') is None:
    return
  try:
    import apache_beam  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  except ImportError as e:
    exit_codes.fail(f'--beam_pipeline_options needs Apache Beam ({e}): pip install '
                    "apache-beam, or -e '.[tfds]'", exit_codes.USAGE)
  if ours.num_workers is not None:
    print('--num_workers has no effect on Beam: the runner\'s workers pre-process '
          '(direct_num_workers=N for a local runner)', file=sys.stderr, flush=True)


# Folder flags whose value may start with `~`: a shell expands `~` only at the
# start of a word, not after `--data_dir=`, and TFDS would then write into a
# folder literally named `~` in the working directory.
_FOLDER_FLAGS = ('--data_dir', '--manual_dir', '--download_dir')


def expand_user_folders(argv: Sequence[str]) -> list[str]:
  """`argv` with a leading `~` of every folder flag's value expanded."""
  out, expand_next = [], False
  for arg in argv:
    if expand_next:
      arg, expand_next = os.path.expanduser(arg), False
    elif arg in _FOLDER_FLAGS:
      expand_next = True
    else:
      name, sep, value = arg.partition('=')
      if sep and name in _FOLDER_FLAGS:
        arg = f'{name}={os.path.expanduser(value)}'
    out.append(arg)
  return out


class _QuietBeam(logging.Filter):
  """Drops Apache Beam's notes on its own optional dependencies (BigQuery
  clients, apitools), logged whenever TFDS imports Beam, which say nothing
  about this build; its errors pass."""

  def filter(self, record: logging.LogRecord) -> bool:
    return (record.levelno >= logging.ERROR
            or f'{os.sep}apache_beam{os.sep}' not in record.pathname)


class _WithoutDatasetInfo:
  """stdout without the `tfds.core.DatasetInfo(...)` that TFDS's build
  prints after every build (60 lines on our sets: features, citation); the
  summary line and `dataset_info.json` in the built folder say the same."""

  def __init__(self, out):
    self._out = out
    self._skipping = False
    self._pending = ''

  def write(self, text: str) -> int:
    self._pending += text
    while '\n' in self._pending:
      line, self._pending = self._pending.split('\n', 1)
      if line.startswith('tfds.core.DatasetInfo('):
        self._skipping = True
      if not self._skipping:
        self._out.write(line + '\n')
      elif line == ')':
        self._skipping = False
    return len(text)

  def flush(self) -> None:
    if self._pending and not self._skipping:
      self._out.write(self._pending)
      self._pending = ''
    self._out.flush()


def main(argv: Sequence[str] | None = None) -> None:
  argv = expand_user_folders(sys.argv[1:] if argv is None else argv)
  ours, rest = _split_our_flags(argv)
  logging.basicConfig(level=ours.log_level.upper())
  if not ours.verbose:
    for handler in logging.getLogger().handlers:
      handler.addFilter(_QuietBeam())
  if ours.num_workers is not None:
    os.environ[builder.ENV_NUM_WORKERS] = str(ours.num_workers)
  if ours.upsample is not None:
    os.environ[builder.ENV_UPSAMPLE] = str(ours.upsample)
  for arg in rest:
    if not arg.startswith('-') and not os.path.exists(arg):
      # A project builder's name: importing its class registers it, and
      # `tfds build` then finds it by name.
      builder.builder_class(arg.split('/')[0])
  rest = with_default_config(rest)
  check_manual_dir(rest)
  check_beam(rest, ours)

  # absl-based code inside TFDS (and grain) reads FLAGS; mark them parsed so
  # it does not abort when run outside absl.app.
  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()
  from tensorflow_datasets.scripts.cli import build  # pylint: disable=g-import-not-at-top
  from tensorflow_datasets.scripts.cli import cli_utils  # pylint: disable=g-import-not-at-top
  parse = cli_utils.make_flags_parser(build.Args, description=__doc__)
  # TFDS's parser names the command after sys.argv[0] (`tfds_build.py`):
  # the usage line names it as it is run.
  argv0, sys.argv[0] = sys.argv[0], 'python -m mol_jax.tfds_build'
  try:
    args = parse(['tfds_build'] + rest)
  finally:
    sys.argv[0] = argv0
  try:
    if ours.verbose:
      args.execute()
    else:
      stdout = _WithoutDatasetInfo(sys.stdout)
      with contextlib.redirect_stdout(stdout):
        args.execute()
      stdout.flush()
  except Exception as e:  # pylint: disable=broad-except
    if ours.verbose:
      raise
    first = (str(e).strip().splitlines() or [type(e).__name__])[0]
    if isinstance(e, AssertionError) and 'Manual directory' in first:
      exit_codes.fail(first.partition(' Create it')[0] + ' Pass the folder that holds your '
                      'licensed copy as --manual_dir (its layouts: docs/DATA.md)',
                      exit_codes.NO_INPUT)
    exit_codes.fail(f'{first} (--verbose for the traceback)', exit_codes.FAILED)


if __name__ == '__main__':
  main()
