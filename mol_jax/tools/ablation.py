"""The paper's ablations as one rerunnable experiment.

    python -m mol_jax.tools.ablation --config=configs/demo.py --workdir=DIR \
        [--seeds=3] [--variants=mol,no_fcc,...] [--config.num_train_steps=60]

trains every variant (below) with LOSO over `--seeds` seeds, each run in
`DIR/<variant>/seed<k>/` through `train.train_and_evaluate`, and writes
`DIR/ablation.json` and `DIR/ablation.md`: per variant the pooled UF1 and UAR
(mean and standard deviation over seeds), the flow and landmark errors
against the synthetic truth where the variant trains those heads, and the
training time. A killed ablation, run again with the same command, skips
finished runs and resumes the unfinished one from its checkpoints.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Callable

import ml_collections
import numpy as np
from absl import app, flags, logging
from ml_collections import config_flags

from mol_jax import checkpointing, config_files, explain, files, reporting, train


def _set(**fields) -> Callable[[ml_collections.ConfigDict], None]:
  def apply(config):
    for dotted, value in fields.items():
      group, name = dotted.split('__')
      config[group][name] = value
  return apply


# Variant name -> (what it removes, config change). Each keeps the rest of
# the network and its weight import (`convert.import_official(use_fcc=...)`).
VARIANTS = {
    'mol': ('nothing: the full MOL', _set()),
    'no_fcc': ('the FCC blocks (identity)', _set(model__use_fcc=False)),
    'no_ccc': ('the CCC blocks (add nothing)', _set(model__use_ccc=False)),
    'no_flow': ('the flow task (of_weight 0)', _set(loss__of_weight=0.0)),
    'no_landmarks': ('the landmark task (ldm_weight 0)', _set(loss__ldm_weight=0.0)),
    'mer_only': ('both auxiliary tasks', _set(loss__of_weight=0.0, loss__ldm_weight=0.0)),
}
# Seeds of run k: config.seed + SEED_STRIDE * k (folds add their index).
SEED_STRIDE = 100
RESULT_KEYS = ('uf1', 'uar', 'accuracy', 'flow_epe_vs_truth', 'zero_flow_epe_vs_truth',
               'landmark_nme_vs_truth', 'mean_shape_nme_vs_truth')

FLAGS = flags.FLAGS


def variant_config(base: ml_collections.ConfigDict, variant: str,
                   seed_index: int) -> ml_collections.ConfigDict:
  """The base config with one variant's change and the run's seed."""
  if variant not in VARIANTS:
    raise ValueError(f'unknown ablation variant {variant!r}; the variants are {list(VARIANTS)}')
  config = ml_collections.ConfigDict(base.to_dict())
  VARIANTS[variant][1](config)
  if config.loss.of_weight == 0:
    config.eval_with_flow = False  # an untrained flow head has nothing to score
  config.seed = base.seed + SEED_STRIDE * seed_index
  return config


def run_dir(workdir: str, variant: str, seed_index: int) -> str:
  return os.path.join(workdir, variant, f'seed{seed_index}')


def run_variant(base: ml_collections.ConfigDict, workdir: str, variant: str,
                seed_index: int) -> dict:
  """One variant and seed, resumed or skipped if finished; its run record."""
  directory = run_dir(workdir, variant, seed_index)
  record_path = os.path.join(directory, 'run.json')
  if os.path.exists(record_path):
    with open(record_path) as f:
      return json.load(f)
  config = variant_config(base, variant, seed_index)
  logging.info('ablation %s, seed %d: %s', variant, config.seed, directory)
  start = time.perf_counter()
  _, summary = train.train_and_evaluate(config, directory)
  record = {'variant': variant, 'seed': config.seed,
            'seconds': time.perf_counter() - start,
            'of_weight': config.loss.of_weight, 'ldm_weight': config.loss.ldm_weight,
            'pooled': {k: summary['pooled'][k] for k in RESULT_KEYS if k in summary['pooled']}}
  files.write_json(record_path, record)
  return record


def summarize(records: list[dict]) -> dict:
  """Per variant: mean and standard deviation over seeds of each score."""
  table = {}
  for variant in VARIANTS:
    runs = [r for r in records if r['variant'] == variant]
    if not runs:
      continue
    row = {'removed': VARIANTS[variant][0], 'seeds': [r['seed'] for r in runs],
           'seconds_mean': float(np.mean([r['seconds'] for r in runs]))}
    for key in RESULT_KEYS:
      values = [r['pooled'][key] for r in runs if key in r['pooled']]
      trained = {'flow': runs[0]['of_weight'] > 0, 'landmark': runs[0]['ldm_weight'] > 0}
      if not values or (key.startswith(('flow', 'landmark')) and not trained[key.split('_')[0]]):
        continue
      row[key] = reporting.mean_and_std(values)
    table[variant] = row
  return table


REGION_KEYS = ('pointing_game_hit_rate', 'mass_in_moving_region', 'moving_region_area_fraction')


def explain_runs(base: ml_collections.ConfigDict, workdir: str, variants: list[str],
                 seeds: int, steps: int) -> dict:
  """Region scores of every fold model of `variants` on its held-out clips.

  Each fold's maps and `region_scores.json` go to
  `<run>/folds/<subject>/explain/` (kept: a rerun reads them); the result
  pools them over folds and seeds, weighted by clips.
  """
  out = {}
  for variant in variants:
    per_map: dict[str, list] = {'mol': [], 'frame_difference': []}
    for k in range(seeds):
      folds = os.path.join(run_dir(workdir, variant, k), 'folds')
      for subject in sorted(os.listdir(folds)):
        directory = os.path.join(folds, subject, 'explain')
        path = os.path.join(directory, 'region_scores.json')
        if not os.path.exists(path):
          model_dir = os.path.join(folds, subject, 'model')
          clips = explain.dataset_clips(base.dataset, base.data_dir or None, subject)
          if clips['regions'] is None:
            raise ValueError(f'{base.dataset} records hold no moving_region: region scores '
                             'need synthetic_me >= 1.4.0')
          explain.explain_clips(checkpointing.restore_model(model_dir), clips['video'],
                                clips['names'], directory,
                                checkpointing.load_metadata(model_dir)['class_names'],
                                clips['regions'], steps=steps)
        with open(path) as f:
          scores = json.load(f)
        for name in per_map:
          per_map[name].append(scores[name])
    out[variant] = {name: {key: float(np.average([s[key] for s in rows],
                                                 weights=[s['num_clips'] for s in rows]))
                           for key in REGION_KEYS} | {'num_clips': sum(s['num_clips'] for s in rows)}
                    for name, rows in per_map.items()}
  return out


def markdown(table: dict, base: ml_collections.ConfigDict) -> str:
  lines = [f'# Ablation: {base.dataset}, {base.num_train_steps} steps per fold', '',
           'Pooled over LOSO folds; mean ± standard deviation over seeds. Errors are '
           'against the synthetic truth (flow end-point error in pixels; landmark '
           'NME over the inter-pupil distance), only where the variant trains the head.', '',
           '| variant | removes | seeds | UF1 | UAR | flow EPE | landmark NME | time per run |',
           '|---|---|---|---|---|---|---|---|']
  cell = lambda row, key: (f"{row[key]['mean']:.3f} ± {row[key]['std']:.3f}" if key in row
                           else '—')
  for variant, row in table.items():
    lines.append(f"| {variant} | {row['removed']} | {len(row['seeds'])} | {cell(row, 'uf1')} | "
                 f"{cell(row, 'uar')} | {cell(row, 'flow_epe_vs_truth')} | "
                 f"{cell(row, 'landmark_nme_vs_truth')} | {row['seconds_mean'] / 60:.1f} min |")
  regions = {v: row['regions'] for v, row in table.items() if 'regions' in row}
  if regions:
    lines += ['', 'Region maps of the held-out clips (`mol_jax.explain`), pooled over folds, '
              'seeds and clips: pointing game = the map maximum inside the moving region '
              f'(dilated by {explain.REGION_DILATION} px); mass = share of the positive map in it; '
              'area = its share of the crop (what a uniform map scores).', '',
              '| variant | clips | MOL pointing game | MOL mass | frame difference pointing '
              'game | frame difference mass | area |', '|---|---|---|---|---|---|---|']
    for variant, r in regions.items():
      m, d = r['mol'], r['frame_difference']
      lines.append(f"| {variant} | {m['num_clips']} | {m['pointing_game_hit_rate']:.3f} | "
                   f"{m['mass_in_moving_region']:.3f} | {d['pointing_game_hit_rate']:.3f} | "
                   f"{d['mass_in_moving_region']:.3f} | {m['moving_region_area_fraction']:.3f} |")
  return '\n'.join(lines) + '\n'


def run_ablation(base: ml_collections.ConfigDict, workdir: str, variants: list[str],
                 seeds: int, explain_variants: tuple[str, ...] = (),
                 explain_steps: int = 8) -> dict:
  unknown = [v for v in list(variants) + list(explain_variants) if v not in VARIANTS]
  if unknown:
    raise ValueError(f'unknown ablation variants {unknown}; the variants are {list(VARIANTS)}')
  os.makedirs(workdir, exist_ok=True)
  # Seed-major: a stopped ablation has every variant at the same seeds.
  records = [run_variant(base, workdir, variant, k)
             for k in range(seeds) for variant in variants]
  table = summarize(records)
  missing = [v for v in explain_variants if v not in variants]
  if missing:
    raise ValueError(f'--explain names variants {missing} that this ablation does not run')
  for variant, regions in explain_runs(base, workdir, list(explain_variants), seeds,
                                       explain_steps).items():
    table[variant]['regions'] = regions
  files.write_json(os.path.join(workdir, 'ablation.json'), table)
  files.write_text(os.path.join(workdir, 'ablation.md'), markdown(table, base))
  return table


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  if not FLAGS.workdir or FLAGS.config is None:
    raise app.UsageError('--config and --workdir are required')
  try:
    run_ablation(FLAGS.config, os.path.abspath(FLAGS.workdir), FLAGS.variants, FLAGS.seeds,
                 tuple(FLAGS.explain), FLAGS.explain_steps)
  except (ValueError, FileNotFoundError) as e:
    raise SystemExit(f'error: {e}') from None
  print(open(os.path.join(FLAGS.workdir, 'ablation.md')).read())


def run_command() -> None:
  """The command line. Its flags are defined here, not on import: absl's
  flags are global to a process, and `mol_jax.main` defines a `workdir` of
  its own, so importing both would fail."""
  flags.DEFINE_string('workdir', None, 'Directory of the ablation runs and its table.')
  flags.DEFINE_integer('seeds', 3, 'Seeds per variant.')
  flags.DEFINE_list('variants', list(VARIANTS), f'Variants to run, of {list(VARIANTS)}.')
  flags.DEFINE_list('explain', [], 'Variants whose fold models get region maps of their '
                    'held-out clips, scored against the moving regions (mol_jax.explain; '
                    'synthetic_me).')
  flags.DEFINE_integer('explain_steps', 8, 'Integrated-gradients steps of those maps.')
  config_flags.DEFINE_config_file('config', None, 'Base training config (e.g. configs/demo.py).',
                                  lock_config=False)
  config_files.prepare_command(sys.argv)
  app.run(main)


if __name__ == '__main__':
  run_command()
