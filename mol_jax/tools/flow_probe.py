"""Does the flow head learn? One held-out fold, its flow error over training.

    python -m mol_jax.tools.flow_probe --config=configs/demo.py --workdir=DIR \
        [--fold=sy01] [--eval_every=25] [--config.loss.flow_loss=epe ...]

trains one fold of `config` (`--fold`, default the first of `config.folds`
or of the protocol) through `train.train_and_evaluate` with
`config.eval_every_steps = --eval_every`, then reads the fold's periodic
evaluations back from `DIR/metrics.jsonl` and prints and writes, per
evaluation step: the held-out flow end-point error against the exact motion
(`flow_epe_vs_truth`), the zero-flow one, their ratio (below 1: the head has
learnt something; 1.0: it predicts zero flow), the TV-L1 targets' ratio for
reference, UF1 and the training wall time. Sets without the exact motion are
scored against the TV-L1 targets instead (`*_vs_targets`, no TV-L1 ratio).

Outputs: `DIR/probe.json` (the levers, each evaluation, the final row) and
`DIR/probe.md` (the per-evaluation table and one summary row to paste into
a comparison of levers). Run again with the same command, it resumes the
fold from its checkpoints, or only reads a finished one back; a workdir that
holds another config's probe is refused.

Flags and config loading are `mol_jax.main`'s (`--config.FIELD=VALUE`,
exit codes 0 / 1 / 2 / 3, `--verbose`).
"""

from __future__ import annotations

import json
import math
import os
import sys
from typing import Any, Sequence

from absl import app, flags

from mol_jax import config_files, exit_codes, experiment, files, losses, train
from mol_jax import main as main_lib

FLAGS = flags.FLAGS

# The config fields a probe varies, shown in its summary row.
LEVERS = ('loss.flow_loss', 'loss.flow_scale', 'loss.flow_pyramid_weights', 'loss.flow_target',
          'model.flow_refinement', 'loss.of_weight', 'optimizer.learning_rate',
          'optimizer.lr_multipliers', 'model.flow_at_zero',
          'loss.flow_pairs_per_step', 'loss.flow_clips_per_step', 'num_train_steps')


def _get(config: Any, dotted: str) -> Any:
  value = config
  for name in dotted.split('.'):
    value = value.get(name) if hasattr(value, 'get') else None
  return value


def read_evaluations(metrics_path: str, fold: str) -> list[dict]:
  """The fold's held-out evaluations from a training run's metrics.jsonl.

  Args:
    metrics_path: `WORKDIR/metrics.jsonl` (`reporting.MetricWriter`): rows
      {'step', 'prefix': '<fold>/train' or '<fold>/test', scalars...}.
    fold: the fold's name.

  Returns:
    One dict per evaluation step, in step order: `step`, `epe` and
    `zero_epe` (MOL's and zero flow's EPE against the exact motion, else the
    TV-L1 targets, as `reference` says), `ratio` = epe / zero_epe,
    `tvl1_ratio` (TV-L1's EPE against the truth / zero's; None without the
    truth), `uf1`, `accuracy` and `wall_s`: the training seconds up to that
    step, summed from the logged steps per second (so it includes earlier
    evaluations and the first step's compilation, and not the time of this
    one). A resumed run logs steps again: the later row wins.
  """
  test, train = {}, {}
  with open(metrics_path) as f:
    for line in f:
      line = line.strip()
      if not line:
        continue
      row = json.loads(line)
      if row.get('prefix') == f'{fold}/test':
        test[int(row['step'])] = row
      elif row.get('prefix') == f'{fold}/train':
        train[int(row['step'])] = row
  seconds, previous, elapsed = {}, 0, 0.0
  for step in sorted(train):
    rate = train[step].get('steps_per_second')
    if rate:
      elapsed += (step - previous) / rate
    previous = step
    seconds[step] = elapsed
  out = []
  for step in sorted(test):
    row = test[step]
    reference = 'truth' if 'flow_epe_vs_truth' in row else 'targets'
    epe, zero = row.get(f'flow_epe_vs_{reference}'), row.get(f'zero_flow_epe_vs_{reference}')
    if epe is None or zero is None:
      continue  # An evaluation without the flow head (config.eval_with_flow False).
    tvl1 = row.get('tvl1_epe_vs_truth')
    logged = [s for s in seconds if s <= step]
    out.append({
        'step': step, 'reference': reference, 'epe': epe, 'zero_epe': zero,
        'ratio': epe / zero if zero else math.nan,
        'tvl1_ratio': tvl1 / zero if tvl1 is not None and zero else None,
        'uf1': row.get('uf1'), 'accuracy': row.get('accuracy'),
        'wall_s': seconds[max(logged)] if logged else None,
    })
  return out


def _number(value: Any, digits: int = 4) -> str:
  if value is None or (isinstance(value, float) and math.isnan(value)):
    return ''
  return f'{value:.{digits}f}' if isinstance(value, float) else str(value)


def markdown(probe: dict) -> str:
  """The per-evaluation table and the one-row summary of a probe."""
  evaluations = probe['evaluations']
  reference = evaluations[0]['reference'] if evaluations else 'truth'
  lines = [f"# Flow probe: {probe['dataset']}, held-out {probe['fold']}", '',
           f'EPE against the {"exact motion" if reference == "truth" else "TV-L1 targets"} '
           '(px); ratio = MOL / zero flow (1.0 = zero flow, below 1 = learnt).', '',
           '| step | flow EPE | zero-flow EPE | EPE / zero | TV-L1 / zero | UF1 | wall s |',
           '|---|---|---|---|---|---|---|']
  for e in evaluations:
    lines.append(f"| {e['step']} | {_number(e['epe'])} | {_number(e['zero_epe'])} | "
                 f"{_number(e['ratio'])} | {_number(e['tvl1_ratio'])} | {_number(e['uf1'])} | "
                 f"{_number(e['wall_s'], 0)} |")
  lines += ['', '## Summary row', '', summary_header(), summary_row(probe), '']
  return '\n'.join(lines)


def summary_header() -> str:
  names = [n.split('.')[-1] for n in LEVERS]
  return ('| fold | ' + ' | '.join(names) + ' | EPE / zero by step | final EPE / zero | '
          'TV-L1 / zero | UF1 |\n' + '|---' * (len(names) + 5) + '|')


def summary_row(probe: dict) -> str:
  """One markdown row: the levers, the ratio curve and the final numbers."""
  evaluations = probe['evaluations']
  last = evaluations[-1] if evaluations else {}
  curve = ', '.join(f"{e['step']}: {e['ratio']:.3f}" for e in evaluations)
  levers = [repr(v) if isinstance(v, str) else f'{v:g}' if isinstance(v, float) else str(v)
            for v in (probe['levers'][n] for n in LEVERS)]
  return (f"| {probe['fold']} | " + ' | '.join(levers) + f' | {curve} | '
          f"{_number(last.get('ratio'))} | {_number(last.get('tvl1_ratio'))} | "
          f"{_number(last.get('uf1'))} |")


def probe_config(config: Any, fold: str, eval_every: int):
  """`config` for one probe run: one fold, periodic evaluations with the flow head."""
  config = config.copy_and_resolve_references()
  config.folds = fold
  config.eval_every_steps = eval_every
  config.eval_with_flow = True
  config.seeds = ''  # One run: the probe reads one metrics file.
  return config


def default_fold(config: Any) -> str:
  """The first of `config.folds`, else the protocol's first fold."""
  chosen = [s.strip() for s in config.folds.split(',') if s.strip()]
  if chosen:
    return chosen[0]
  return experiment.resolve(config).folds[0].name


def run_probe(config: Any, workdir: str, fold: str = '', eval_every: int = 25) -> dict:
  """Trains (or resumes, or reads back) one fold and returns the probe's record.

  Raises:
    train.ConfigError: a bad config or `eval_every`, or a workdir holding a
      probe of another config (before anything is written).
  """
  if eval_every < 1:
    raise train.ConfigError(f'--eval_every must be at least 1, got {eval_every}')
  try:  # The levers are what a probe is about: checked before any data is built.
    losses.flow_loss_options(config.loss)
  except ValueError as e:
    raise train.ConfigError(str(e)) from e
  fold = fold or default_fold(config)
  config = probe_config(config, fold, eval_every)
  path = os.path.join(workdir, 'probe.json')
  settings = json.loads(config.to_json())
  if os.path.isfile(path):
    with open(path) as f:
      earlier = json.load(f).get('config')
    if earlier is not None and earlier != settings:
      changed = sorted(k for k in set(_flat(earlier)) | set(_flat(settings))
                       if _flat(earlier).get(k) != _flat(settings).get(k))
      raise train.ConfigError(f'{path} is a probe of another config (differs in {changed}): '
                              'use another --workdir, or the same flags')
  train.train_and_evaluate(config, workdir)
  evaluations = read_evaluations(os.path.join(workdir, 'metrics.jsonl'), fold)
  probe = {'dataset': config.dataset, 'fold': fold, 'eval_every': eval_every,
           'levers': {n: _get(config, n) for n in LEVERS}, 'evaluations': evaluations,
           'final': evaluations[-1] if evaluations else None, 'config': settings}
  files.write_json(path, probe)
  files.write_text(os.path.join(workdir, 'probe.md'), markdown(probe))
  return probe


def _flat(tree: dict, prefix: str = '') -> dict:
  out = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      out.update(_flat(value, f'{prefix}{key}.'))
    else:
      out[f'{prefix}{key}'] = value
  return out


def main(argv: Sequence[str]) -> None:
  fail = lambda message, code, error=None: exit_codes.fail(message, code, error, FLAGS.verbose)
  if len(argv) > 1:
    fail(f'unexpected arguments {argv[1:]}: every flag is --name=value', exit_codes.USAGE)
  if not FLAGS.verbose:
    main_lib.quiet_checkpoint_library()
  workdir = os.path.abspath(FLAGS.workdir)
  try:
    probe = run_probe(FLAGS.config, workdir, FLAGS.fold, FLAGS.eval_every)
  except train.ConfigError as e:
    fail(str(e), exit_codes.USAGE, e)
  except FileNotFoundError as e:
    fail(str(e), exit_codes.NO_INPUT, e)
  except train.NonFiniteError as e:
    fail(str(e), exit_codes.FAILED, e)
  print(markdown(probe))
  print(f"outputs: {os.path.join(workdir, 'probe.json')}, {os.path.join(workdir, 'probe.md')}")


def run_command() -> None:
  """The command line: `mol_jax.main`'s flags (defined when it is imported,
  so only here: the ablation tool defines a `workdir` flag of its own) and
  this tool's two."""
  flags.DEFINE_string('fold', '', 'Held-out fold (subject) to train; default the first of '
                      'config.folds, else the first of the protocol.')
  flags.DEFINE_integer('eval_every', 25, 'Evaluate the held-out fold every N steps (and after '
                       'the last).')
  config_files.prepare_command(sys.argv)
  app.run(main, flags_parser=main_lib.parse_flags)


if __name__ == '__main__':
  run_command()
