"""MOL's flow beside the exact motion and the TV-L1 targets, for a held-out clip.

    python -m mol_jax.tools.flow_figure WORKDIR/folds/sy01/model synthetic_me/demo \
        --data_dir=DIR --subject=sy01 [--clip=N] [--pairs=2,4] --out=flow.png

reads one evaluation clip (the centred, normalised crop that evaluation
scores) of a synthetic set's subject, runs the model on it and draws, per
frame pair, the second frame, MOL's flow, the exact motion and the TV-L1
targets on one speed scale (`visualize.flow_comparison_panel`), each
column's header with its mean end-point error against the exact motion.
Without `--clip`, the subject's clip with the most motion. Meant for the
subject the model was not trained on (the fold's own subject); the README's
picture is this tool's output on the demo's sy01 fold.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from mol_jax import checkpointing, exit_codes, files, inference, visualize
from mol_jax.data import input_pipeline


def figure(model_dir: str, dataset: str, data_dir: str | None, subject: str,
           clip: int | None = None, pairs: list[int] | None = None) -> tuple[np.ndarray, dict]:
  """The panel (uint8 RGB) and the clip's scores {'video_id', 'clip', 'epe': {column: px}}."""
  clips = [c for _, c in input_pipeline.evaluation_clips(dataset, data_dir, [subject])]
  if not clips:
    raise SystemExit(f'error: {dataset} has no clips of subject {subject!r}')
  if 'true_flow' not in clips[0]:
    raise SystemExit(f'error: {dataset} holds no exact motion (true_flow); use a synthetic_me config')
  if clip is None:
    clip = int(np.argmax([np.linalg.norm(c['true_flow'], axis=-1).mean() for c in clips]))
  if not 0 <= clip < len(clips):
    raise SystemExit(f'error: --clip={clip}: subject {subject} has clips 0..{len(clips) - 1}')
  chosen = clips[clip]
  flow = inference.from_checkpoint(model_dir).predict(chosen['video'])['flow']
  columns = [('MOL', flow), ('truth', chosen['true_flow']), ('TV-L1', chosen['flow'])]
  truth = np.asarray(chosen['true_flow'])
  scores = {name: float(np.linalg.norm(np.asarray(f) - truth, axis=-1).mean())
            for name, f in columns + [('zero flow', np.zeros_like(truth))] if name != 'truth'}
  video_id = str(chosen['video_id'])
  panel = visualize.flow_comparison_panel(
      chosen['video'][..., 0], columns, pairs,
      title=f'{subject} (held out), {video_id}: MOL flow, exact motion, TV-L1 targets')
  return panel, {'video_id': video_id, 'clip': clip, 'epe': scores}


def main(argv: list[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('model', help="a model folder, e.g. WORKDIR/folds/sy01/model")
  parser.add_argument('dataset', help='a synthetic_me config, e.g. synthetic_me/demo')
  parser.add_argument('--data_dir', default=None, help='TFDS data dir (default: TFDS default)')
  parser.add_argument('--subject', required=True, help="the fold's held-out subject")
  parser.add_argument('--clip', type=int, default=None)
  parser.add_argument('--pairs', default='', help='comma-separated frame pairs 0-6; default all')
  parser.add_argument('--out', required=True, help='PNG file to write')
  parser.add_argument('--verbose', action='store_true', help='the traceback of an error too')
  args = parser.parse_args(argv)
  try:
    pairs = [int(p) for p in args.pairs.split(',') if p.strip()] or None
  except ValueError as e:
    exit_codes.fail(f'--pairs={args.pairs}: give frame pairs 0-6, e.g. 1,3,5', exit_codes.USAGE, e)
  # Checked before the model runs: a figure that cannot be written is known at once.
  problem = files.folder_problem(os.path.dirname(os.path.abspath(args.out)), '--out folder')
  if problem:
    exit_codes.fail(problem, exit_codes.USAGE)
  try:
    panel, scores = figure(args.model, args.dataset, args.data_dir, args.subject, args.clip,
                           pairs)
  except checkpointing.CheckpointError as e:
    exit_codes.fail(str(e), exit_codes.BAD_WEIGHTS, e, args.verbose)
  except FileNotFoundError as e:
    exit_codes.fail(f'{e}; give a model folder (WORKDIR/folds/<subject>/model) and a built '
                    'synthetic_me set (--data_dir)', exit_codes.NO_INPUT, e, args.verbose)
  print(f'{args.out}: {scores}')
  visualize.save_png(args.out, panel)


if __name__ == '__main__':
  main(sys.argv[1:])
