"""`tfds build` without TensorFlow or Apache Beam.

Usage (same flags as `tfds build`, plus three of ours):

  python -m mol_jax.tfds_build smic \
      --manual_dir=<folder received> --data_dir=<output> \
      [--config=3class] [--max_examples_per_split=N] [--overwrite] \
      [--num_workers=N] [--upsample=1] [--log_level=INFO]

The dataset is a project builder's name (casme2, samm, smic, megc2019,
synthetic_me: `mol_jax.data.builders`, so an installed package needs no
checkout) or, as with `tfds build`, a builder folder such as
`tfds_builders/smic`.

The `tfds` console script imports TensorFlow (and Beam); its `build`
sub-command alone does not, so it is driven here directly. The output format
defaults to `array_record` (readable with `tfds.data_source` and grain);
`tfrecord` would need TensorFlow.

Our flags:
  --num_workers: pre-processing processes (default: all cores; 0: in process).
  --upsample: dlib HOG detector upsampling (default 1, the official value).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Sequence

from mol_jax.data import builder


def _split_our_flags(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
  parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
  parser.add_argument('--num_workers', type=int, default=None)
  parser.add_argument('--upsample', type=int, default=None)
  parser.add_argument('--log_level', default='INFO')
  return parser.parse_known_args(list(argv))


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


def main(argv: Sequence[str] | None = None) -> None:
  argv = expand_user_folders(sys.argv[1:] if argv is None else argv)
  ours, rest = _split_our_flags(argv)
  logging.basicConfig(level=ours.log_level.upper())
  if ours.num_workers is not None:
    os.environ[builder.ENV_NUM_WORKERS] = str(ours.num_workers)
  if ours.upsample is not None:
    os.environ[builder.ENV_UPSAMPLE] = str(ours.upsample)
  for arg in rest:
    if not arg.startswith('-') and not os.path.exists(arg):
      # A project builder's name: importing its class registers it, and
      # `tfds build` then finds it by name.
      builder.builder_class(arg.split('/')[0])
  if not any(a == '--file_format' or a.startswith('--file_format=') for a in rest):
    rest.append('--file_format=array_record')

  from absl import flags  # pylint: disable=g-import-not-at-top
  # absl-based code inside TFDS (and grain) reads FLAGS; mark them parsed so
  # it does not abort when run outside absl.app.
  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()
  from tensorflow_datasets.scripts.cli import build  # pylint: disable=g-import-not-at-top
  from tensorflow_datasets.scripts.cli import cli_utils  # pylint: disable=g-import-not-at-top
  parse = cli_utils.make_flags_parser(build.Args, description=__doc__)
  args = parse(['tfds_build'] + rest)
  args.execute()


if __name__ == '__main__':
  main()
