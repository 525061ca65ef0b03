"""How far parameter-free Lucas-Kanade gets on a set's exact motion.

    python -m mol_jax.tools.lucas_kanade_baseline synthetic_me/demo [--data_dir=DIR]
        [--subjects=sy01,...] [--pre_blur=0.7,1,1.5] [--damping=1e-3,3e-3,1e-2]

The flow refinement (`mol_jax/model/flow_refine.py`) reads damped
Lucas-Kanade estimates of each pair's motion as inputs; this scores those
estimates alone, with no network, against the exact motion of a synthetic
set's evaluation crops (what the network sees), for every pre-blur, damping
and window: the baseline a learnt refinement has to beat, and how its
constants were chosen. Prints a markdown table of EPE / zero-flow EPE per
setting, pooled over the subjects' pairs, with the TV-L1 targets' ratio.
"""

from __future__ import annotations

import argparse
import sys

import jax
import numpy as np

from mol_jax.data import input_pipeline
from mol_jax.model import flow_refine


def _floats(text: str) -> list[float]:
  return [float(v) for v in text.split(',') if v.strip()]


def score(dataset: str, data_dir: str | None, subjects: list[str], pre_blurs: list[float],
          dampings: list[float]) -> dict:
  """EPE against the exact motion of every Lucas-Kanade setting, of TV-L1 and of zero flow.

  Returns:
    {'zero': px, 'tvl1': px, 'pairs': n, 'lucas_kanade': [{'pre_blur', 'damping',
    'window', 'epe'}...]}: mean end-point errors over all pixels of all pairs.
  """
  estimate = jax.jit(flow_refine.lucas_kanade, static_argnames=('windows', 'pre_blur', 'damping'))
  settings = [(p, d) for p in pre_blurs for d in dampings]
  sums = np.zeros((len(settings), len(flow_refine.LK_WINDOWS)))
  zero = tvl1 = 0.0
  pairs = 0
  for _, clip in input_pipeline.evaluation_clips(dataset, data_dir, subjects):
    if 'true_flow' not in clip:
      raise SystemExit(f'error: {dataset} holds no exact motion (true_flow); use a synthetic_me config')
    video, truth = np.asarray(clip['video']), np.asarray(clip['true_flow'])
    epe = lambda flow: np.linalg.norm(flow - truth, axis=-1).mean(axis=(1, 2)).sum()  # pylint: disable=cell-var-from-loop
    zero += epe(np.zeros_like(truth))
    tvl1 += epe(np.asarray(clip['flow']))
    pairs += truth.shape[0]
    for i, (pre_blur, damping) in enumerate(settings):
      flows = np.asarray(estimate(video[:-1], video[1:], windows=flow_refine.LK_WINDOWS,
                                  pre_blur=pre_blur, damping=damping))
      for j in range(len(flow_refine.LK_WINDOWS)):
        sums[i, j] += epe(flows[..., 2 * j:2 * j + 2])
  if not pairs:
    raise SystemExit(f'error: no clips of {subjects} in {dataset}')
  rows = [{'pre_blur': p, 'damping': d, 'window': w, 'epe': sums[i, j] / pairs}
          for i, (p, d) in enumerate(settings) for j, w in enumerate(flow_refine.LK_WINDOWS)]
  return {'zero': zero / pairs, 'tvl1': tvl1 / pairs, 'pairs': pairs, 'lucas_kanade': rows}


def markdown(scores: dict) -> str:
  zero = scores['zero']
  lines = [f'{scores["pairs"]} pairs; zero flow {zero:.4f} px, TV-L1 {scores["tvl1"]:.4f} px '
           f'({scores["tvl1"] / zero:.3f} of zero)', '',
           '| pre-blur | damping | window | EPE (px) | EPE / zero |', '|---|---|---|---|---|']
  for row in scores['lucas_kanade']:
    lines.append(f'| {row["pre_blur"]:g} | {row["damping"]:g} | {row["window"]:g} | '
                 f'{row["epe"]:.4f} | {row["epe"] / zero:.3f} |')
  return '\n'.join(lines)


def main(argv: list[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('dataset', help='a synthetic_me config, e.g. synthetic_me/demo')
  parser.add_argument('--data_dir', default=None, help='TFDS data dir (default: TFDS default)')
  parser.add_argument('--subjects', default='', help='comma-separated; default all')
  parser.add_argument('--pre_blur', default=str(flow_refine.LK_PRE_BLUR))
  parser.add_argument('--damping', default=str(flow_refine.LK_DAMPING))
  args = parser.parse_args(argv)
  subjects = ([s for s in args.subjects.split(',') if s]
              or input_pipeline.list_subjects(args.dataset, args.data_dir))
  print(markdown(score(args.dataset, args.data_dir, subjects, _floats(args.pre_blur),
                       _floats(args.damping))))


if __name__ == '__main__':
  main(sys.argv[1:])
