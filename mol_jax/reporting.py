"""Progress bars, metric logs (JSONL + TensorBoard) and the LOSO results."""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Sequence

import jax
import numpy as np

from mol_jax import files
from mol_jax import metrics as metrics_lib


class _Progress:
  """tqdm bar on process 0 showing loss and throughput."""

  def __init__(self, total: int, start: int, desc: str):
    self._bar = None
    if jax.process_index() == 0:
      from tqdm import tqdm  # pylint: disable=import-outside-toplevel
      self._bar = tqdm(total=total, initial=start, desc=desc, unit='step',
                       dynamic_ncols=True, file=sys.stderr)
    self._step = start

  def update(self, step: int, summary: dict[str, float]) -> None:
    if self._bar is None:
      return
    self._bar.update(step - self._step)
    self._step = step
    self._bar.set_postfix(loss=f"{summary['loss']:.4f}", acc=f"{summary['accuracy']:.2f}",
                          it_s=f"{summary['steps_per_second']:.2f}")

  def close(self) -> None:
    if self._bar is not None:
      self._bar.close()


def progress(total: int, start: int, desc: str) -> _Progress:
  return _Progress(total, start, desc)


class MetricWriter:
  """Scalars to `workdir/metrics.jsonl` and TensorBoard (process 0 only)."""

  def __init__(self, workdir: str):
    self._active = jax.process_index() == 0
    self._jsonl = None
    self._tb = None
    if not self._active:
      return
    self._jsonl = open(os.path.join(workdir, 'metrics.jsonl'), 'a')
    try:
      from tensorboardX import SummaryWriter  # pylint: disable=import-outside-toplevel
      self._tb = SummaryWriter(os.path.join(workdir, 'tensorboard'))
    except ImportError:
      self._tb = None

  def scalars(self, prefix: str, step: int, values: dict[str, float]) -> None:
    if not self._active:
      return
    values = {k: float(v) for k, v in values.items() if v is not None}
    self._jsonl.write(json.dumps({'step': step, 'prefix': prefix, **values}) + '\n')
    self._jsonl.flush()
    if self._tb is not None:
      for key, value in values.items():
        self._tb.add_scalar(f'{prefix}/{key}', value, step)

  def close(self) -> None:
    if self._jsonl is not None:
      self._jsonl.close()
    if self._tb is not None:
      self._tb.close()


def _pooled(fold_results: Sequence[dict], key: str, num_classes: int) -> dict | None:
  if not fold_results or any(key not in r for r in fold_results):
    return None
  confusion = sum(np.asarray(r[key]['confusion'], np.int64) for r in fold_results)
  confusion = np.asarray(confusion).reshape(num_classes, num_classes)
  return {'confusion': confusion.tolist(), **metrics_lib.summarize(confusion)}


def summarize_folds(fold_results: Sequence[dict], class_names: Sequence[str],
                    config: Any) -> dict:
  """Per-fold and pooled metrics. `fixed` (the model after the last step) and
  `best_on_test` (selected on the held-out subject, as the official code
  does) are reported separately and never mixed."""
  num_classes = len(class_names)
  folds = []
  for r in fold_results:
    row = {'subject': r['subject']}
    for key in ('fixed', 'best_on_test'):
      if key in r:
        row[key] = {k: r[key][k] for k in ('accuracy', 'uf1', 'uar', 'wf1')}
        row[key]['num_examples'] = len(r[key]['labels'])
        row[key]['step'] = r[key].get('step')
        for extra in ('landmark_nme', 'flow_epe'):
          if r[key].get(extra) is not None:
            row[key][extra] = r[key][extra]
    folds.append(row)
  summary = {
      'dataset': config.dataset,
      'class_names': list(class_names),
      'num_folds': len(fold_results),
      'num_train_steps': config.num_train_steps,
      'eval_unit': getattr(config, 'eval_unit', 'clip'),
      'folds': folds,
      'fixed': _pooled(fold_results, 'fixed', num_classes),
  }
  best = _pooled(fold_results, 'best_on_test', num_classes)
  if best is not None:
    summary['best_on_test'] = best
  return summary


def markdown_table(summary: dict) -> str:
  lines = [f"# LOSO results: {summary['dataset']}", '',
           f"{summary['num_folds']} folds, {summary['num_train_steps']} steps per fold, "
           f"classes {', '.join(summary['class_names'])}.", '']
  unit = summary.get('eval_unit', 'clip')
  if unit == 'video':
    lines += ["Test samples are videos (each video's clips' mean softmax).", '']
  for key, title in (('fixed', 'model after the last step (fixed)'),
                     ('best_on_test', 'best held-out accuracy (best_on_test: selected on the test subject)')):
    pooled = summary.get(key)
    if pooled is None:
      continue
    lines += [f'## {title}', '',
              f'| subject | {unit}s | accuracy | UF1 | UAR |', '|---|---|---|---|---|']
    for row in summary['folds']:
      m = row.get(key)
      if m:
        lines.append(f"| {row['subject']} | {m['num_examples']} | {m['accuracy']:.4f} | "
                     f"{m['uf1']:.4f} | {m['uar']:.4f} |")
    lines.append(f"| **pooled** | {pooled['num_examples']} | {pooled['accuracy']:.4f} | "
                 f"{pooled['uf1']:.4f} | {pooled['uar']:.4f} |")
    lines += ['', f"WF1 {pooled['wf1']:.4f}; confusion (rows true, columns predicted): "
              f"{pooled['confusion']}", '']
  return '\n'.join(lines)


def plot_confusion(confusion, class_names: Sequence[str], path: str, title: str) -> None:
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  confusion = np.asarray(confusion)
  fig, ax = plt.subplots(figsize=(1.2 * len(class_names) + 2, 1.2 * len(class_names) + 1.5))
  ax.imshow(confusion, cmap='Blues')
  ax.set_xticks(range(len(class_names)), class_names, rotation=45, ha='right')
  ax.set_yticks(range(len(class_names)), class_names)
  ax.set_xlabel('predicted')
  ax.set_ylabel('true')
  ax.set_title(title)
  for i in range(confusion.shape[0]):
    for j in range(confusion.shape[1]):
      ax.text(j, i, str(confusion[i, j]), ha='center', va='center',
              color='white' if confusion[i, j] > confusion.max() / 2 else 'black')
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def write_results(workdir: str, summary: dict, class_names: Sequence[str]) -> dict[str, str]:
  """results.json, results.md and a confusion-matrix PNG per selection."""
  paths = {'json': os.path.join(workdir, 'results.json'),
           'markdown': os.path.join(workdir, 'results.md')}
  files.write_json(paths['json'], summary)
  with open(paths['markdown'], 'w') as f:
    f.write(markdown_table(summary))
  for key in ('fixed', 'best_on_test'):
    if summary.get(key):
      paths[f'confusion_{key}'] = os.path.join(workdir, f'confusion_{key}.png')
      plot_confusion(summary[key]['confusion'], class_names, paths[f'confusion_{key}'],
                     f"{summary['dataset']} ({key})")
  print(markdown_table(summary))
  print('outputs:')
  for name, path in paths.items():
    print(f'  {name}: {path}')
  print(f"  tensorboard: {os.path.join(workdir, 'tensorboard')}")
  print(f"  fold models: {os.path.join(workdir, 'folds', '<subject>', 'model')}")
  return paths
