"""Run a trained MOL on a video: `python -m mol_jax.predict --checkpoint DIR --input PATH --out OUT`.

PATH is a video file (mp4, mov, avi, ... through OpenCV) or a folder of
frames. OUT receives predictions.json and pictures (docs/INFERENCE.md).
Weights: `--checkpoint DIR` (written by training, WORKDIR/folds/<subject>/model,
or by `mol_jax.convert`), or `--official_weights X.pth|.npz --num_classes N`.

The video degrades per clip, never as a whole: a clip that cannot be
aligned is skipped (listed in predictions.json as `skipped_clips`), frames
that cannot be decoded are counted against the container's frame count, a
clip without motion is flagged `still` (its probabilities are not
meaningful and stay out of the video's), and an `--align` other than the
model's own is recorded; each prints one `warning: <file>: ...` line on
stderr.

Exit codes: `EXIT_CODES` below (docs/EXIT_CODES.md); an --out that cannot be
written is refused before anything is read. Errors print one line,
`error: <file>: <reason>`.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Sequence

from mol_jax import clip_format, exit_codes, files
from mol_jax import explain
from mol_jax import inference
from mol_jax import video as video_lib
from mol_jax import visualize
from mol_jax.data import preprocess

EXIT_CODES = (exit_codes.OK, exit_codes.USAGE, exit_codes.NO_INPUT, exit_codes.NO_FACE,
              exit_codes.TOO_FEW_FRAMES, exit_codes.BAD_WEIGHTS)


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog='python -m mol_jax.predict',
      description='Run MOL on a video file or a folder of frames; write predictions.json '
      'and pictures of the flow and landmarks it estimated.',
      epilog=exit_codes.summary(EXIT_CODES))
  weights = parser.add_mutually_exclusive_group(required=True)
  weights.add_argument('--checkpoint', metavar='DIR',
                       help='model directory (training: WORKDIR/folds/<subject>/model)')
  weights.add_argument('--official_weights', metavar='FILE',
                       help='official PyTorch state_dict (.pth) or .npz with the same keys')
  parser.add_argument('--num_classes', type=int, default=None,
                      help='classes of --official_weights (default: from the weights)')
  parser.add_argument('--neighbor_num', type=int, default=4,
                      help='k of the CCC graph for --official_weights')
  parser.add_argument('--step', type=int, default=None, help='checkpoint step (default latest)')
  parser.add_argument('--class_names', default='',
                      help='comma-separated names in label order (default: stored with the '
                      'checkpoint or its training run, else class_0, class_1, ...)')
  parser.add_argument('--input', required=True, metavar='PATH',
                      help='video file or folder of frames')
  parser.add_argument('--out', required=True, metavar='OUT', help='output folder')
  parser.add_argument('--window', type=int, default=0,
                      help='0: the whole video is one window, sampled as the dataset builders '
                      'sample a video; W >= 8: sliding windows of W frames with a face, one '
                      'clip each')
  parser.add_argument('--hop', type=int, default=None, help='window step (default W // 2)')
  parser.add_argument('--max_clips', type=int, default=8,
                      help='at most this many clips, evenly spaced (0: all)')
  parser.add_argument('--align', choices=('auto',) + preprocess.ALIGN_MODES, default='auto',
                      help='alignment; auto: the one the model was trained with (checkpoint '
                      'metadata, else its dataset, else per_frame, official); another one is '
                      'warned about and recorded in predictions.json')
  parser.add_argument('--upsample', type=int, default=1, help='HOG face detector upsampling')
  parser.add_argument('--max_frames', type=int, default=0,
                      help='read at most this many frames (0: all)')
  parser.add_argument('--batch_size', type=int, default=8, help='clips per model call')
  parser.add_argument('--tvl1', action='store_true',
                      help='also compute Dual TV-L1 flow (the training target) and show it')
  parser.add_argument('--no_gif', action='store_true', help='skip the animated GIFs')
  parser.add_argument('--scale', type=int, default=2, help='pixel upscale of the pictures')
  parser.add_argument('--verbose', action='store_true', help='print the traceback of an error')
  parser.add_argument('--quiet', action='store_true', help='no progress bars')
  parser.add_argument('--explain', action='store_true',
                      help='also draw region maps of what drives each clip\'s class '
                      '(mol_jax.explain) into OUT/explain/')
  return parser


def load_predictor(args: argparse.Namespace):
  """The Predictor named by the flags. Raises ValueError / OSError on bad weights."""
  names = [c.strip() for c in args.class_names.split(',') if c.strip()] or None
  if args.checkpoint:
    return inference.from_checkpoint(args.checkpoint, args.step, class_names=names)
  return inference.from_official_weights(args.official_weights, args.num_classes,
                                         args.neighbor_num, class_names=names)


def out_problem(out: str) -> str | None:
  """Why predictions cannot be written to folder `out`, or None
  (`files.folder_problem`: checked before any frame is read)."""
  return files.folder_problem(out, '--out')


def main(argv: Sequence[str] | None = None) -> int:
  """Runs the command; returns the exit code."""
  parser = build_parser()
  try:
    args = parser.parse_args(argv)
  except SystemExit as e:  # argparse: 0 for --help, 2 for bad arguments.
    return int(e.code or 0)
  if args.num_classes is not None and args.checkpoint:
    return exit_codes.report('--num_classes goes with --official_weights; a checkpoint '
                             'knows its classes', exit_codes.USAGE)
  if args.window and args.window < clip_format.NUM_FRAMES:
    return exit_codes.report(f'--window must be 0 or >= {clip_format.NUM_FRAMES}',
                             exit_codes.USAGE)
  for flag, least in (('batch_size', 1), ('scale', 1), ('upsample', 0), ('max_clips', 0),
                      ('max_frames', 0)):
    if getattr(args, flag) < least:
      return exit_codes.report(
          f'--{flag} must be at least {least}, not {getattr(args, flag)}', exit_codes.USAGE)
  if args.hop is not None and args.hop < 1:
    return exit_codes.report(f'--hop must be at least 1, not {args.hop}', exit_codes.USAGE)
  problem = out_problem(args.out)
  if problem:
    return exit_codes.report(problem, exit_codes.USAGE)
  if not os.path.exists(args.input):
    return exit_codes.report(f'{args.input}: no such file or folder', exit_codes.NO_INPUT)

  weights = args.checkpoint or args.official_weights
  t0 = time.perf_counter()
  try:
    predictor = load_predictor(args)
  except ImportError as e:
    # PyTorch for a .pth: a missing dependency, as in convert (and Beam in tfds_build).
    return exit_codes.report(str(e), exit_codes.USAGE, e, args.verbose)
  except (FileNotFoundError, ValueError, KeyError, OSError) as e:
    return exit_codes.report(f'{weights}: cannot load the model ({e})'
                             if weights not in str(e) else str(e), exit_codes.BAD_WEIGHTS,
                             e, args.verbose)
  t_load = time.perf_counter() - t0

  t0 = time.perf_counter()
  try:
    prediction = predictor.predict_video(
        args.input, window=args.window, hop=args.hop, max_clips=args.max_clips,
        align=None if args.align == 'auto' else args.align, upsample=args.upsample,
        max_frames=args.max_frames or None, batch_size=args.batch_size, tvl1=args.tvl1,
        progress=not args.quiet)
  except video_lib.VideoError as e:
    return exit_codes.report(str(e), e.exit_code, e, args.verbose)
  t_predict = time.perf_counter() - t0
  for line in prediction.warnings:
    print(f'warning: {line}', file=sys.stderr, flush=True)
  # A reused --out keeps no picture of another model or video.
  visualize.remove_earlier_report(args.out)
  extra = {'seconds': {'load_model': round(t_load, 2), 'predict': round(t_predict, 2)}}
  if args.explain:
    t0 = time.perf_counter()
    extra['explain'] = explain.explain_prediction(predictor, prediction,
                                                  os.path.join(args.out, 'explain'))
    extra['seconds']['explain'] = round(time.perf_counter() - t0, 2)
  report = visualize.save_report(prediction, args.out, scale=args.scale, gif=not args.no_gif,
                                 extra=extra)
  video = report['video']
  probabilities = ', '.join(f'{k} {v:.3f}' for k, v in video['probabilities'].items())
  frames = report['frames']
  still = ' (every clip is still: not meaningful)' if video['still'] else ''
  print(f"{args.input}: {video['label']}{still} ({probabilities}); {video['num_clips']} "
        f"clip(s), {report['clips_skipped']} skipped; {frames['with_face']} of "
        f"{frames['total']} frames with a face; outputs in {args.out}", flush=True)
  return exit_codes.OK


if __name__ == '__main__':
  sys.exit(main())
