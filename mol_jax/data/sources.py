"""Built TFDS sets as random-access sources: one dataset, or several as one.

`dataset` is a TFDS name with its config ('casme2/3class') or a
comma-separated list of them ('casme2/3class,samm/3class,smic/3class'). A
list is read as one collection:

* every subject is named `<alias>_<subject>` (and every video
  `<alias>_<video>`), so that subjects of different datasets never merge
  (CASME II '06' and SAMM '006' are different people). The alias is the
  builder's name ('samm'), or name and config ('synthetic_me_small') where
  two entries share a builder;
* every dataset must have the same classes in the same order (the 3-class
  configs of every builder share them);
* records keep the features every dataset has (the exact-motion truth of
  `synthetic_me` is left out when mixed with a licensed set).

A single name reads as it always has: subjects are the TFDS splits.
"""

from __future__ import annotations

import functools
import re
import subprocess
import sys
from typing import Any, Sequence

import numpy as np
import tensorflow_datasets as tfds
from absl import logging
from tensorflow_datasets.core import constants

from mol_jax.data import builder

# The exact motion that synthetic records hold beside their training targets.
TRUTH_KEYS = ('true_flow', 'true_landmarks')


class BuildError(RuntimeError):
  """Building a missing synthetic set failed (the build said why)."""


def _tfds():
  return tfds


def dataset_names(dataset: str) -> list[str]:
  """The TFDS names of `dataset` ('a/x,b/y' -> ['a/x', 'b/y'])."""
  entries = [n.strip() for n in str(dataset).split(',')]
  names = [n for n in entries if n]
  if not names:
    raise ValueError('config.dataset is empty; name a built set such as smic/3class.')
  if len(names) != len(entries):
    raise ValueError(f'config.dataset={dataset!r} has an empty entry; separate the names '
                     'with single commas, e.g. casme2/3class,samm/3class')
  if len(set(names)) != len(names):
    raise ValueError(f'config.dataset names a dataset twice: {dataset!r}')
  return names


def aliases(dataset: str) -> dict[str, str]:
  """{alias: TFDS name} of the datasets of a collection, in the given order."""
  names = dataset_names(dataset)
  bases = [n.split('/')[0] for n in names]
  return {(base if bases.count(base) == 1 else re.sub(r'\W', '_', name)): name
          for base, name in zip(bases, names)}


def default_data_dir() -> str:
  """The folder TFDS reads and writes when no data_dir is given
  ($TFDS_DATA_DIR, else ~/tensorflow_datasets)."""
  return constants.DATA_DIR


def build_command(dataset: str, data_dir: str | None) -> str:
  """The command that builds exactly `dataset`, its builder and config, into
  `data_dir` (without a config the CLI builds the builder's first one, which
  need not be the one a training config reads)."""
  name, _, config = dataset.partition('/')
  words = ['python -m mol_jax.tfds_build', name]
  if config:
    words.append(f'--config={config}')
  # synthetic_me generates its data; every other set reads the licensed copy.
  if name != 'synthetic_me':
    words.append('--manual_dir=RAW')
  words.append(f'--data_dir={data_dir or default_data_dir()}')
  return ' '.join(words)


def check_builder_configs(dataset: str) -> None:
  """Each entry of `dataset` with a project builder names one of its configs.

  Raises:
    ValueError: an entry names a config its builder does not have (a
      misspelling that would otherwise fail inside a build or TFDS).
  """
  for name in dataset_names(dataset):
    base, _, config = name.partition('/')
    cls = builder.builder_class(base)
    configs = [c.name for c in getattr(cls, 'BUILDER_CONFIGS', None) or []]
    if config and configs and config not in configs:
      raise ValueError(f'config.dataset: {base} has no config {config!r}; its configs are '
                       f'{", ".join(configs)}')


def ensure_built(names: Sequence[str], data_dir: str | None, build_if_missing: bool) -> None:
  """Builds each missing `synthetic_me` set of `names` when `build_if_missing`
  (the first run of a config builds its own data); a clear error for any
  other set that is not built.

  Raises:
    FileNotFoundError: a set is not built and cannot be built here; the
      message names the command that builds it.
    BuildError: the build of a synthetic set failed.
  """
  for dataset in names:
    try:
      list_subjects(dataset, data_dir)
      continue
    except FileNotFoundError as e:
      missing = e
    name, _, builder_config = dataset.partition('/')
    if not (build_if_missing and name == 'synthetic_me'):
      where = data_dir or f'{default_data_dir()} (the TFDS default)'
      # Built elsewhere, the set is found with --config.data_dir=DIR.
      elsewhere = '' if data_dir else ' (building elsewhere? pass --config.data_dir=DIR too)'
      raise FileNotFoundError(
          f'dataset {dataset} is not built in data_dir={where}. It needs your licensed copy '
          f'(docs/DATA.md): run `{build_command(dataset, data_dir)}` with RAW the '
          f'folder that holds it{elsewhere}.') from missing
    logging.info('building %s (first run only)', dataset)
    # A separate process: the TFDS build CLI parses flags of its own, which
    # clash with the calling program's absl flags.
    build = subprocess.run([sys.executable, '-m', 'mol_jax.tfds_build', name]
                           + ([f'--config={builder_config}'] if builder_config else [])
                           + ([f'--data_dir={data_dir}'] if data_dir else []),
                           check=False)
    if build.returncode:
      # The build printed its own error line above this one.
      raise BuildError(f'building {dataset} failed (exit {build.returncode}); rerun '
                       f'`{build_command(dataset, data_dir)}` with --verbose for '
                       'the traceback')
    list_subjects(dataset, data_dir)


@functools.lru_cache(maxsize=16)
def built_builder(dataset: str, data_dir: str | None):
  """The TFDS builder of one built set, checked to hold array_record splits.

  Raises:
    FileNotFoundError: not built (or built in another format), with the command that builds it.
  """
  tfds = _tfds()
  message = (f'Dataset {dataset!r} not found in data_dir='
             f'{data_dir or default_data_dir() + " (the TFDS default)"}; build it with '
             f'`{build_command(dataset, data_dir)}`')
  try:
    builder = tfds.builder(dataset, data_dir=data_dir)
  except Exception as e:  # pylint: disable=broad-except
    # TFDS's first line says what it missed; the rest lists every dataset it knows.
    first = (str(e).strip().splitlines() or [type(e).__name__])[0]
    raise FileNotFoundError(f'{message} ({first}).') from e
  # Once a builder class is imported (registered), tfds.builder returns it
  # even where nothing was built: check that the data is there.
  if not builder.info.splits:
    raise FileNotFoundError(f'{message} (no prepared splits in {builder.data_dir}).')
  # Random access (every epoch's shuffle, per-subject folds) needs
  # array_record; `tfds build` writes tfrecord unless told otherwise.
  file_format = getattr(builder.info.file_format, 'value', builder.info.file_format)
  if file_format and file_format != 'array_record':
    raise FileNotFoundError(
        f'{builder.data_dir} was built as {file_format}; mol_jax reads array_record. '
        f'Rebuild it: `python -m mol_jax.tfds_build {dataset.split("/")[0]} '
        f'--config={builder.builder_config.name if builder.builder_config else "..."} '
        '--overwrite ...` (array_record by default), or `tfds build ... '
        '--file_format=array_record --overwrite`')
  return builder


def _single(dataset: str) -> bool:
  return len(dataset_names(dataset)) == 1


def _splits(dataset: str, data_dir: str | None) -> list[str]:
  return sorted(built_builder(dataset, data_dir).info.splits.keys())


def subjects_by_dataset(dataset: str, data_dir: str | None = None) -> dict[str, list[str]]:
  """{alias: its subjects, as `list_subjects` names them}, in the given order."""
  if _single(dataset):
    return {next(iter(aliases(dataset))): _splits(dataset, data_dir)}
  return {alias: [f'{alias}_{s}' for s in _splits(name, data_dir)]
          for alias, name in aliases(dataset).items()}


def list_subjects(dataset: str, data_dir: str | None = None) -> list[str]:
  """Subjects (one split each) of a built dataset or collection, sorted."""
  return sorted(s for group in subjects_by_dataset(dataset, data_dir).values() for s in group)


def class_names(dataset: str, data_dir: str | None = None) -> list[str]:
  """Label names, in label order.

  Raises:
    ValueError: the datasets of a collection have different classes.
  """
  names = {n: list(built_builder(n, data_dir).info.features['label'].names)
           for n in dataset_names(dataset)}
  first = next(iter(names.values()))
  differ = {n: c for n, c in names.items() if c != first}
  if differ:
    raise ValueError(
        'The datasets of a collection need the same classes in the same order: '
        + '; '.join(f'{n} has {c}' for n, c in names.items())
        + '. Use every builder\'s 3class config (e.g. casme2/3class,samm/3class).')
  return first


def built_dir(dataset: str, data_dir: str | None = None) -> str:
  """The folder of one built dataset: <data_dir>/<name>/<config>/<version>."""
  if not _single(dataset):
    raise ValueError(f'{dataset!r} is a collection of datasets; name one of them.')
  return str(built_builder(dataset, data_dir).data_dir)


def has_truth(dataset: str, data_dir: str | None = None) -> bool:
  """Whether every record holds the exact motion (`TRUTH_KEYS`; synthetic_me >= 1.3.0)."""
  return all(all(k in built_builder(n, data_dir).info.features for k in TRUTH_KEYS)
             for n in dataset_names(dataset))


def _text(value: Any) -> str:
  return value.decode() if isinstance(value, bytes) else str(value)


class Concatenated:
  """Data sources of several datasets read as one (`source`).

  Record i is record i - start(k) of part k; its subject and video id carry
  the part's alias, and it keeps the features every part has.
  """

  def __init__(self, parts: Sequence[tuple[str, Any]], keys: frozenset[str]):
    self._parts = list(parts)
    self._keys = keys
    self._starts = np.cumsum([0] + [len(s) for _, s in self._parts])

  def __len__(self) -> int:
    return int(self._starts[-1])

  def __getitem__(self, index: int) -> dict[str, Any]:
    index = int(index)
    if index < 0:
      index += len(self)
    if not 0 <= index < len(self):
      raise IndexError(f'record {index} of {len(self)}')
    part = int(np.searchsorted(self._starts, index, side='right')) - 1
    alias, part_source = self._parts[part]
    record = part_source[index - int(self._starts[part])]
    record = {k: v for k, v in record.items() if k in self._keys}
    record['subject'] = f"{alias}_{_text(record['subject'])}"
    record['video_id'] = f"{alias}_{_text(record['video_id'])}"
    return record


def source(dataset: str, data_dir: str | None, subjects: Sequence[str]):
  """A random-access source of the subjects' records, in the order given
  (grouped by dataset for a collection).

  Raises:
    ValueError: no subject, or one the dataset does not have.
  """
  known = set(list_subjects(dataset, data_dir))
  unknown = [s for s in subjects if s not in known]
  if unknown:
    raise ValueError(f'Subjects {unknown} are not splits of {dataset}; it has '
                     f'{sorted(known)}.')
  if not subjects:
    raise ValueError(f'No subjects selected from {dataset}.')
  if _single(dataset):
    return built_builder(dataset, data_dir).as_data_source(split='+'.join(subjects))
  named = aliases(dataset)
  keys = frozenset.intersection(*(frozenset(built_builder(n, data_dir).info.features)
                                  for n in named.values()))
  parts = []
  for alias, members in subjects_by_dataset(dataset, data_dir).items():
    splits = [s[len(alias) + 1:] for s in subjects if s in members]
    if splits:
      parts.append((alias, built_builder(named[alias], data_dir)
                    .as_data_source(split='+'.join(splits))))
  return Concatenated(parts, keys)
