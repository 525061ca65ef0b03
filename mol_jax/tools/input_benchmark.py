"""Seconds per batch of the input pipeline on a built set.

  python -m mol_jax.tools.input_benchmark synthetic_me/default --data_dir=DIR
      [--test_subject=sy01] [--batch_size=8] [--num_batches=20]

Times `input_pipeline.create_datasets` for one fold on this process: its
set-up (the per-subject normalisation statistics), training batches after
the first (the first starts grain's reading threads) and the evaluation
batches of the held-out subject, to compare against a train step.
"""

from __future__ import annotations

import argparse
import itertools
import time
from typing import Sequence

from mol_jax.data import input_pipeline


def time_batches(dataset: str, data_dir: str | None, test_subject: str | None = None,
                 batch_size: int = 8, num_batches: int = 20) -> dict[str, float]:
  """Seconds of set-up, per training batch and per evaluation batch."""
  if num_batches < 1:
    raise ValueError(f'num_batches must be at least 1, got {num_batches}')
  subjects = input_pipeline.list_subjects(dataset, data_dir)
  start = time.perf_counter()
  datasets = input_pipeline.create_datasets(
      dataset, data_dir, [test_subject or subjects[0]], batch_size=batch_size,
      process_index=0, process_count=1)
  setup = time.perf_counter() - start
  next(datasets.train)
  start = time.perf_counter()
  for _ in itertools.islice(datasets.train, num_batches):
    pass
  train = (time.perf_counter() - start) / num_batches
  start = time.perf_counter()
  count = sum(1 for _ in datasets.eval)
  evaluation = (time.perf_counter() - start) / count
  return {'setup_s': round(setup, 3), 'train_s_per_batch': round(train, 4),
          'eval_s_per_batch': round(evaluation, 4), 'eval_batches': count,
          'batch_size': batch_size}


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('dataset', help="a built set, e.g. 'synthetic_me/default'")
  parser.add_argument('--data_dir', default=None)
  parser.add_argument('--test_subject', default=None,
                      help='the held-out subject (default: the first)')
  parser.add_argument('--batch_size', type=int, default=8)
  parser.add_argument('--num_batches', type=int, default=20)
  args = parser.parse_args(argv)
  result = time_batches(args.dataset, args.data_dir, args.test_subject, args.batch_size,
                        args.num_batches)
  print(result, flush=True)
  return result


if __name__ == '__main__':
  main()
