"""Progress bars, metric logs (JSONL + TensorBoard) and the results of a protocol."""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Sequence

import jax
import numpy as np
from matplotlib.figure import Figure
from tqdm import tqdm

from mol_jax import files
from mol_jax import metrics as metrics_lib


class _Progress:
  """tqdm bar on process 0 showing loss and throughput."""

  def __init__(self, total: int, start: int, desc: str):
    self._bar = None
    if jax.process_index() == 0:
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
    self._path = os.path.join(workdir, 'metrics.jsonl')
    self._jsonl = open(self._path, 'a')
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

  def drop_after(self, prefixes: Sequence[str], step: int) -> int:
    """Removes the rows of `prefixes` past `step` from metrics.jsonl.

    A resumed fold replays the steps after its last checkpoint; without
    this, those steps would be in the file twice. Returns the rows removed.
    """
    if not self._active:
      return 0
    self._jsonl.close()
    with open(self._path) as f:
      lines = f.readlines()
    kept = []
    for line in lines:
      row = json.loads(line) if line.strip() else None
      if row is None or (row.get('prefix') in prefixes and row.get('step', 0) > step):
        continue
      kept.append(line if line.endswith('\n') else line + '\n')
    if len(kept) != len(lines):
      files.write_text(self._path, ''.join(kept))
    self._jsonl = open(self._path, 'a')
    return len(lines) - len(kept)

  def close(self) -> None:
    if self._jsonl is not None:
      self._jsonl.close()
    if self._tb is not None:
      self._tb.close()


CLASS_SCORES = ('accuracy', 'uf1', 'uar', 'wf1')
# Flow and landmark errors, in the order the tables show them.
ERRORS = ('flow_epe_vs_truth', 'tvl1_epe_vs_truth', 'zero_flow_epe_vs_truth',
          'landmark_nme_vs_truth', 'dlib_nme_vs_truth', 'mean_shape_nme_vs_truth',
          'flow_epe_vs_targets', 'zero_flow_epe_vs_targets', 'landmark_nme_vs_targets',
          'mean_shape_nme_vs_targets')


def scalar_scores(result: dict) -> dict[str, float]:
  """The class scores and errors of one evaluation, for the metric writer."""
  return {k: result[k] for k in CLASS_SCORES + ERRORS if result.get(k) is not None}


def _fold_row(result: dict) -> dict:
  row = {k: result[k] for k in CLASS_SCORES}
  row.update(num_examples=len(result['labels']), num_clips=result.get('num_clips'),
             step=result.get('step'))
  row.update({k: result[k] for k in ERRORS if result.get(k) is not None})
  return row


def _pooled(fold_results: Sequence[dict], key: str, num_classes: int) -> dict | None:
  """Class scores from the summed confusion matrices; errors as means over
  every held-out clip of every fold."""
  if not fold_results or any(key not in r for r in fold_results):
    return None
  results = [r[key] for r in fold_results]
  confusion = sum(np.asarray(r['confusion'], np.int64) for r in results)
  confusion = np.asarray(confusion).reshape(num_classes, num_classes)
  pooled = {'confusion': confusion.tolist(), **metrics_lib.summarize(confusion),
            'num_clips': sum(r.get('num_clips', 0) for r in results)}
  for error in ERRORS:
    if all(r.get(error) is not None for r in results):
      clips = np.array([r['num_clips'] for r in results], np.float64)
      pooled[error] = float(np.sum(clips * [r[error] for r in results]) / clips.sum())
  return pooled


def summarize_folds(fold_results: Sequence[dict], class_names: Sequence[str],
                    config: Any) -> dict:
  """Per-fold (`folds.<subject>`, or `<dataset>` for lodo) and pooled
  (`pooled`) scores of the model after the last step; for a composite of
  several datasets also pooled per dataset (`by_dataset`); with
  `config.report_best_on_test`, the official selection on the held-out
  subject under `best_on_test`, never mixed in."""
  num_classes = len(class_names)
  protocol = getattr(config, 'protocol', 'loso')
  summary = {
      'dataset': config.dataset,
      'protocol': protocol,
      'class_names': list(class_names),
      'num_folds': len(fold_results),
      'num_train_steps': config.num_train_steps,
      'eval_unit': getattr(config, 'eval_unit', 'clip'),
      'pooled': _pooled(fold_results, 'fixed', num_classes),
      'folds': {r['subject']: _fold_row(r['fixed']) for r in fold_results},
  }
  datasets = sorted({r['dataset'] for r in fold_results if r.get('dataset')})
  if protocol == 'composite' and len(datasets) > 1:
    summary['by_dataset'] = {
        d: _pooled([r for r in fold_results if r.get('dataset') == d], 'fixed', num_classes)
        for d in datasets}
  best = _pooled(fold_results, 'best_on_test', num_classes)
  if best is not None:
    summary['best_on_test'] = {
        'pooled': best,
        'folds': {r['subject']: _fold_row(r['best_on_test']) for r in fold_results}}
  return summary


def mean_and_std(values: Sequence[float]) -> dict[str, float]:
  """Mean and (population) standard deviation over repeated runs."""
  return {'mean': float(np.mean(values)), 'std': float(np.std(values))}


SEED_SCORES = CLASS_SCORES + ERRORS


def summarize_seeds(summaries: dict[int, dict]) -> dict:
  """Repeated runs of one protocol: each seed's pooled scores and, per
  score, the mean and standard deviation over seeds (`over_seeds`)."""
  first = next(iter(summaries.values()))
  per_seed = {str(seed): {k: s['pooled'][k] for k in SEED_SCORES if k in s['pooled']}
              for seed, s in summaries.items()}
  keys = [k for k in SEED_SCORES if all(k in row for row in per_seed.values())]
  return {
      'dataset': first['dataset'], 'protocol': first.get('protocol', 'loso'),
      'class_names': first['class_names'],
      'num_folds': first['num_folds'], 'num_train_steps': first['num_train_steps'],
      'eval_unit': first.get('eval_unit', 'clip'), 'seeds': [int(s) for s in summaries],
      'over_seeds': {k: mean_and_std([row[k] for row in per_seed.values()]) for k in keys},
      'per_seed': per_seed,
  }


def seeds_markdown(summary: dict) -> str:
  keys = list(summary['over_seeds'])
  lines = [f"# {summary.get('protocol', 'loso').upper()} results over seeds: "
           f"{summary['dataset']}", '',
           f"{len(summary['seeds'])} seeds, {summary['num_folds']} folds, "
           f"{summary['num_train_steps']} steps per fold; pooled over folds, "
           'model after the last step. Each seed: seeds/<seed>/results.md.', '',
           '| seed | ' + ' | '.join(keys) + ' |', '|---' * (1 + len(keys)) + '|']
  for seed, row in summary['per_seed'].items():
    lines.append(f'| {seed} | ' + ' | '.join(f'{row[k]:.4f}' for k in keys) + ' |')
  lines.append('| **mean ± std** | ' + ' | '.join(
      f"{summary['over_seeds'][k]['mean']:.4f} ± {summary['over_seeds'][k]['std']:.4f}"
      for k in keys) + ' |')
  return '\n'.join(lines) + '\n'


def _score_table(pooled: dict | None, folds: dict, unit: str, fold_kind: str = 'subject'
                 ) -> list[str]:
  """A row per fold (or dataset) and, unless `pooled` is None, the pooled row."""
  errors = [e for e in ERRORS if e in (pooled or next(iter(folds.values())))]
  lines = [f'| {fold_kind} | {unit}s | clips | accuracy | UF1 | UAR | '
           + ' | '.join(errors) + (' |' if errors else ''),
           '|---' * (6 + len(errors)) + '|']
  rows = list(folds.items()) + ([('**pooled**', pooled)] if pooled is not None else [])
  for name, m in rows:
    num = m['num_examples']
    lines.append(f"| {name} | {num} | {m.get('num_clips')} | {m['accuracy']:.4f} | "
                 f"{m['uf1']:.4f} | {m['uar']:.4f} | "
                 + ' | '.join(f'{m[e]:.4f}' if e in m else '' for e in errors)
                 + (' |' if errors else ''))
  return lines


def markdown_table(summary: dict) -> str:
  protocol = summary.get('protocol', 'loso')
  fold_kind = 'dataset' if protocol == 'lodo' else 'subject'
  lines = [f"# {protocol.upper()} results: {summary['dataset']}", '',
           f"{summary['num_folds']} folds, {summary['num_train_steps']} steps per fold, "
           f"classes {', '.join(summary['class_names'])}.", '']
  unit = summary.get('eval_unit', 'clip')
  if unit == 'video':
    lines += ["Test samples are videos (each video's clips' mean softmax); flow and "
              'landmark errors are means over clips.', '']
  sections = [('model after the last step', summary.get('pooled'), summary['folds'])]
  if 'best_on_test' in summary:
    sections.append(('best held-out accuracy (best_on_test: selected on the test subject)',
                     summary['best_on_test']['pooled'], summary['best_on_test']['folds']))
  for title, pooled, folds in sections:
    if pooled is None:
      continue
    lines += [f'## {title}', ''] + _score_table(pooled, folds, unit, fold_kind)
    lines += ['', f"WF1 {pooled['wf1']:.4f}; confusion (rows true, columns predicted): "
              f"{pooled['confusion']}", '']
  if summary.get('by_dataset'):
    # Each dataset's subjects' folds pooled; the model after the last step.
    lines += ['## per dataset (its subjects\' folds pooled)', '']
    lines += _score_table(None, summary['by_dataset'], unit, 'dataset')
    lines.append('')
  return '\n'.join(lines)


def plot_confusion(confusion, class_names: Sequence[str], path: str, title: str) -> None:
  confusion = np.asarray(confusion)
  # A Figure of its own, not pyplot's: no global backend switched in a notebook.
  fig = Figure(figsize=(1.2 * len(class_names) + 2, 1.2 * len(class_names) + 1.5))
  ax = fig.subplots()
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


# (train scalar, title) of each loss term, and the held-out errors drawn beside them.
LOSS_TERMS = (('loss/mer', 'classification loss'), ('loss/flow', 'flow loss (MSE / 7)'),
              ('loss/landmarks', 'landmark loss (L1 / IPD)'))
CURVE_ERRORS = (('flow_epe_vs_truth', 'tvl1_epe_vs_truth', 'zero_flow_epe_vs_truth'),
                ('landmark_nme_vs_truth', 'dlib_nme_vs_truth', 'mean_shape_nme_vs_truth'))


def learning_curves(metrics_path: str) -> dict[str, dict[str, tuple[list, list]]]:
  """{'train' | 'test': {scalar: (steps, mean over folds)}} from metrics.jsonl.

  A fold's later lines win for the same step (a resumed run logs a step again).
  """
  per_fold: dict[str, dict[str, dict[int, dict[int, float]]]] = {'train': {}, 'test': {}}
  with open(metrics_path) as f:
    for line in f:
      row = json.loads(line)
      subject, _, split = row['prefix'].partition('/')
      if split not in per_fold:
        continue
      for key, value in row.items():
        if key not in ('step', 'prefix'):
          per_fold[split].setdefault(key, {}).setdefault(subject, {})[row['step']] = value
  curves: dict[str, dict[str, tuple[list, list]]] = {'train': {}, 'test': {}}
  for split, scalars in per_fold.items():
    for key, folds in scalars.items():
      steps = sorted(set.intersection(*(set(v) for v in folds.values())))
      curves[split][key] = (steps, [float(np.mean([v[s] for v in folds.values()]))
                                    for s in steps])
  return curves


def plot_learning_curves(metrics_path: str, path: str, title: str) -> str | None:
  """Each loss term over training and the held-out errors against the truth
  (or the targets) with their baselines, means over folds; None without a
  term to draw."""
  curves = learning_curves(metrics_path)
  terms = [(k, t) for k, t in LOSS_TERMS if k in curves['train']]
  if not terms:
    return None
  panels = len(terms) + 2
  fig = Figure(figsize=(3.6 * panels, 3.2))
  axes = fig.subplots(1, panels)
  for ax, (key, label) in zip(axes, terms):
    ax.plot(*curves['train'][key])
    ax.set_title(label)
    ax.set_xlabel('step')
  for ax, names, label in zip(axes[len(terms):], CURVE_ERRORS,
                              ('held-out flow EPE (px)', 'held-out landmark NME')):
    for index, name in enumerate(names):
      if name not in curves['test']:
        name = name.replace('_vs_truth', '_vs_targets')
      if name in curves['test']:
        steps, values = curves['test'][name]
        if name.startswith(('flow_epe', 'landmark_nme')):
          ax.plot(steps, values, '-o', markersize=3, label=name)
        else:  # A baseline: the same at every step.
          ax.axhline(values[-1], linestyle='--', color=f'C{index}', label=name)
    ax.set_title(label)
    ax.set_xlabel('step')
    if ax.has_data():
      ax.legend(fontsize=7)
  fig.suptitle(title)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  return path


def write_results(workdir: str, summary: dict, class_names: Sequence[str]) -> dict[str, str]:
  """results.json, results.md and a confusion-matrix PNG per selection."""
  paths = {'json': os.path.join(workdir, 'results.json'),
           'markdown': os.path.join(workdir, 'results.md')}
  files.write_json(paths['json'], summary)
  with open(paths['markdown'], 'w') as f:
    f.write(markdown_table(summary))
  for key, pooled in (('fixed', summary.get('pooled')),
                      ('best_on_test', summary.get('best_on_test', {}).get('pooled'))):
    if pooled:
      paths[f'confusion_{key}'] = os.path.join(workdir, f'confusion_{key}.png')
      plot_confusion(pooled['confusion'], class_names, paths[f'confusion_{key}'],
                     f"{summary['dataset']} ({key})")
  metrics_path = os.path.join(workdir, 'metrics.jsonl')
  if os.path.isfile(metrics_path):
    curves = plot_learning_curves(metrics_path, os.path.join(workdir, 'learning_curves.png'),
                                  f"{summary['dataset']}: mean over {summary['num_folds']} folds")
    if curves:
      paths['learning_curves'] = curves
  print(markdown_table(summary))
  print('outputs:')
  for name, path in paths.items():
    print(f'  {name}: {path}')
  print(f"  tensorboard: {os.path.join(workdir, 'tensorboard')}")
  print(f"  fold models: {os.path.join(workdir, 'folds', '<subject>', 'model')}")
  return paths


def write_seed_results(workdir: str, summary: dict) -> dict[str, str]:
  """results.json and results.md of repeated runs (`summarize_seeds`)."""
  paths = {'json': os.path.join(workdir, 'results.json'),
           'markdown': os.path.join(workdir, 'results.md')}
  files.write_json(paths['json'], summary)
  files.write_text(paths['markdown'], seeds_markdown(summary))
  print(seeds_markdown(summary))
  print('outputs:')
  for name, path in paths.items():
    print(f'  {name}: {path}')
  print(f"  each seed: {os.path.join(workdir, 'seeds', '<seed>')}")
  return paths
