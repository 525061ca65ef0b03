"""Evaluation protocols: which subjects each fold holds out.

* `loso`: leave one subject out of one dataset (MOL's protocol; MEGC 2019
  when the dataset is the built `megc2019` composite).
* `composite`: leave one subject out of several datasets read as one
  (`config.dataset = 'casme2/3class,samm/3class,smic/3class'`), subjects
  prefixed with their dataset (`samm_006`); scores pooled over every fold
  and, beside, per dataset.
* `lodo`: leave one dataset out: each fold trains on every other dataset
  and tests on all of the held-out one, in the classes they share.

Every fold trains a fresh model; the held-out subjects are never seen in
training, and the model scored is the one after the last step.
"""

from __future__ import annotations

import dataclasses

from mol_jax.data import sources

PROTOCOLS = ('loso', 'composite', 'lodo')


@dataclasses.dataclass(frozen=True)
class Fold:
  """One fold: its name (a subject, or a dataset's alias for lodo), the
  subjects it holds out, and the alias of the dataset they belong to."""
  name: str
  test_subjects: tuple[str, ...]
  dataset: str


def check(protocol: str, names: list[str]) -> None:
  """Whether `protocol` suits the datasets `names` (checked before any data is read).

  Raises:
    ValueError: an unknown protocol, or one the number of datasets does not suit.
  """
  if protocol not in PROTOCOLS:
    raise ValueError(f'config.protocol must be one of {PROTOCOLS}, got {protocol!r}')
  if protocol == 'loso' and len(names) > 1:
    raise ValueError(f"config.protocol='loso' holds out subjects of one dataset; config.dataset "
                     f"names {len(names)} ({','.join(names)}): use 'composite' (leave one "
                     "subject out of all of them) or 'lodo' (leave one dataset out).")
  if protocol == 'lodo' and len(names) < 2:
    raise ValueError(f"config.protocol='lodo' needs at least two datasets in config.dataset "
                     f"(comma-separated, e.g. 'casme2/3class,samm/3class'), got "
                     f"{','.join(names)!r}")


def folds(protocol: str, dataset: str, data_dir: str | None) -> list[Fold]:
  """The folds of `protocol` over `dataset` (one name, or several comma-separated).

  Raises:
    ValueError: an unknown protocol, or one the number of datasets does not suit.
  """
  check(protocol, sources.dataset_names(dataset))
  by_dataset = sources.subjects_by_dataset(dataset, data_dir)
  sources.class_names(dataset, data_dir)  # The datasets must share their classes.
  if protocol == 'lodo':
    return [Fold(alias, tuple(subjects), alias) for alias, subjects in by_dataset.items()]
  owner = {s: alias for alias, subjects in by_dataset.items() for s in subjects}
  return [Fold(s, (s,), owner[s]) for s in sorted(owner)]
