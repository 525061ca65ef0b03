"""Region maps: where on the face the motion that drives MOL's class is.

    python -m mol_jax.explain --checkpoint DIR --input VIDEO|FRAMES --out OUT
    python -m mol_jax.explain --checkpoint DIR --dataset synthetic_me/demo \
        --data_dir DATA --subject sy01 --out OUT

For every clip, `class_map` attributes the predicted class's logit to the
input pixels by integrated gradients along the straight path from the *still*
clip (every frame equal to the clip's first) to the clip itself, summed over
the frames. Why this attribution: a micro-expression is a change, so the
question is which of the clip's changes moved the class score, and the still
clip is the input with none of them; integrated gradients then weigh every
pixel's change by the class score's gradient along the way from one to the
other, whereas a plain gradient says where a change *would* matter, not
where this clip's did. (MOL's kNN choice makes its score jump along that
path, so the attributions do not add up exactly to the score's change, as
they would for a smooth network.) The
enhanced 16x16 maps would give a Grad-CAM-style picture, but their 8-pixel
cells are as large as the action units the synthetic set moves (3-5 px of
motion in regions 10-20 px wide), too coarse to score. The map is smoothed
by a Gaussian of `SMOOTH_SIGMA` pixels before it is scored or drawn.

With a built dataset whose records hold `moving_region` (synthetic_me >=
1.4.0), `OUT/region_scores.json` scores the maps against where the action
units truly moved (`score_maps`), beside the clip's frame-difference map as a
baseline. Pictures: `OUT/<video>.png` (first frame, map over the face, the
moving region's outline when known, and MOL's flow at the pair of largest
motion).
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from typing import Any, Sequence

import cv2
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from matplotlib import colormaps
from scipy import ndimage

from mol_jax import clip_format, exit_codes, files
from mol_jax import inference
from mol_jax import video as video_lib
from mol_jax import visualize
from mol_jax.data import input_pipeline, sources

# Integrated-gradients steps (midpoint rule) between the still clip and the clip.
IG_STEPS = 16
# Gaussian smoothing of a map before scoring or drawing, in crop pixels.
SMOOTH_SIGMA = 2.0
# The moving region is dilated by this many pixels before scoring: an
# attribution peak at the region's rim still points at it.
REGION_DILATION = 3


@functools.partial(jax.jit, static_argnums=(0, 4))
def _attribution(graphdef, state, video, classes, steps):
  """Integrated gradients of logit[classes] from the still clip.

  Args:
    video: [batch, 8, 128, 128, 1] normalised clip.
    classes: int [batch].

  Returns:
    [batch, 8, 128, 128] per-frame attribution.
  """
  still = jnp.broadcast_to(video[:, :1], video.shape)

  def score(v):
    # Merged inside the differentiated function: the model sows intermediates.
    logits = nnx.merge(graphdef, state)(v, train=False, with_flow=False)['logits']
    return jnp.take_along_axis(logits, classes[:, None], axis=1).sum()

  def grad_at(alpha):
    return jax.grad(score)(still + alpha * (video - still))

  alphas = (jnp.arange(steps, dtype=video.dtype) + 0.5) / steps
  mean_grad = jax.lax.map(grad_at, alphas).mean(0)
  return ((video - still) * mean_grad)[..., 0]


def predicted_classes(model, video: np.ndarray, batch_size: int = 4) -> np.ndarray:
  """int [n]: the class MOL predicts for each of [n, 8, 128, 128, 1] clips."""
  graphdef, state = nnx.split(model)
  logits = jax.jit(lambda s, v: nnx.merge(graphdef, s)(v, train=False, with_flow=False)['logits'])
  return np.concatenate([np.asarray(logits(state, jnp.asarray(video[i:i + batch_size]))).argmax(-1)
                         for i in range(0, len(video), batch_size)]).astype(np.int32)


def integrated_gradients(model, video: np.ndarray, classes: np.ndarray,
                         steps: int = IG_STEPS, batch_size: int = 4) -> np.ndarray:
  """Per-frame attribution of logit[classes], from the still clip.

  Args:
    model: a `MOL`.
    video: float32 [n, 8, 128, 128, 1] normalised clips.
    classes: int [n] class whose logit is explained.

  Returns:
    float32 [n, 8, 128, 128], (clip - still clip) x the mean gradient of the
    logit on the straight path between them (midpoint rule); zero wherever
    a pixel never changes.
  """
  video = np.asarray(video, np.float32)
  classes = np.asarray(classes, np.int32)
  graphdef, state = nnx.split(model)
  out = []
  for i in range(0, len(video), batch_size):
    chunk, cls = video[i:i + batch_size], classes[i:i + batch_size]
    pad = batch_size - len(chunk)  # one compiled shape for every chunk
    chunk = np.concatenate([chunk, np.zeros((pad,) + chunk.shape[1:], np.float32)])
    cls = np.concatenate([cls, np.zeros((pad,), np.int32)])
    attr = _attribution(graphdef, state, jnp.asarray(chunk), jnp.asarray(cls), steps)
    out.append(np.asarray(attr)[:batch_size - pad])
  return (np.concatenate(out) if out else
          np.zeros((0,) + video.shape[1:4], np.float32))


def class_map(model, video: np.ndarray, classes: np.ndarray | None = None,
              steps: int = IG_STEPS) -> tuple[np.ndarray, np.ndarray]:
  """Region maps of clips: `integrated_gradients` summed over frames, smoothed.

  Args:
    model: a `MOL`.
    video: float32 [n, 8, 128, 128, 1] normalised clips.
    classes: int [n] class whose logit is explained; default the predicted one.

  Returns:
    (maps float32 [n, 128, 128], positive = evidence for the class;
    classes int [n]).
  """
  video = np.asarray(video, np.float32)
  classes = predicted_classes(model, video) if classes is None else np.asarray(classes, np.int32)
  maps = integrated_gradients(model, video, classes, steps).sum(1)
  smoothed = [ndimage.gaussian_filter(m, SMOOTH_SIGMA) for m in maps]
  return (np.stack(smoothed).astype(np.float32) if smoothed else maps), classes


def frame_difference_map(video: np.ndarray) -> np.ndarray:
  """Baseline: [n, 8, 128, 128, 1] -> [n, 128, 128] summed |frame t+1 - frame t|, smoothed."""
  diff = np.abs(np.diff(np.asarray(video, np.float32)[..., 0], axis=1)).sum(1)
  return np.stack([ndimage.gaussian_filter(m, SMOOTH_SIGMA) for m in diff]).astype(np.float32)


def score_maps(maps: np.ndarray, regions: np.ndarray,
               dilation: int = REGION_DILATION) -> dict[str, Any]:
  """Pooled scores of maps against the truly moving regions.

  Args:
    maps: [n, H, W] attribution (positive = evidence).
    regions: [n, H, W] 0/1 moving region per clip; clips with an empty
      region (frames that miss the motion) are left out.

  Returns:
    `pointing_game_hit_rate` (the map's maximum inside the dilated region),
    `mass_in_moving_region` (fraction of the positive mass inside it),
    `moving_region_area_fraction` (its share of the crop: what a uniform map
    scores), each the mean over scored clips, and `num_clips`.
  """
  hits, masses, areas = [], [], []
  for m, r in zip(np.asarray(maps, np.float64), np.asarray(regions) > 0):
    if not r.any():
      continue
    if dilation:
      r = ndimage.binary_dilation(r, iterations=dilation)
    hits.append(float(r.flat[int(np.argmax(m))]))
    positive = np.maximum(m, 0.0)
    masses.append(float(positive[r].sum() / max(positive.sum(), 1e-30)))
    areas.append(float(r.mean()))
  mean = lambda v: float(np.mean(v)) if v else float('nan')
  return {'pointing_game_hit_rate': mean(hits), 'mass_in_moving_region': mean(masses),
          'moving_region_area_fraction': mean(areas), 'num_clips': len(hits)}


def _overlay(frame: np.ndarray, attribution: np.ndarray,
             region: np.ndarray | None = None) -> np.ndarray:
  """The map's positive part in a heat colour over the gray face."""
  face = visualize.to_rgb(frame).astype(np.float32)
  positive = np.maximum(attribution, 0)
  level = positive / max(float(positive.max()), 1e-12)
  heat = colormaps['inferno'](level)[..., :3] * 255
  alpha = 0.75 * level[..., None]
  image = np.clip(face * (1 - alpha) + heat * alpha, 0, 255).astype(np.uint8)
  if region is not None and region.any():
    contours, _ = cv2.findContours(region.astype(np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(image, contours, -1, (60, 220, 60), 1)
  return image


def clip_picture(frames: np.ndarray, attribution: np.ndarray, flow: np.ndarray | None,
                 title: str, region: np.ndarray | None = None, scale: int = 2) -> np.ndarray:
  """[first frame | map over the face | MOL flow at its largest pair], labelled.

  Args:
    frames: uint8 [8, 128, 128] the crop the model saw.
    attribution: [128, 128].
    flow: [7, 128, 128, 2] MOL's flow, or None; its most moving pair is drawn
      with `visualize.FLOW_FULL_SCALE_PX` px at full colour.
    region: [128, 128] 0/1 true moving region (drawn green), or None.
  """
  tiles = [visualize.to_rgb(frames[0]), _overlay(frames[0], attribution, region)]
  if flow is not None:
    pair = int(np.argmax(np.abs(flow).sum(axis=(1, 2, 3))))
    # The fixed speed scale of the prediction panels: a flow near zero
    # stays near white instead of being stretched to full colour.
    tiles.append(visualize.flow_to_color(flow[pair], visualize.FLOW_FULL_SCALE_PX))
  row = [visualize.upscale(t, scale) for t in tiles]
  return _title(title, row) if title else visualize.grid([row])


def _title(text: str, row: list[np.ndarray]) -> np.ndarray:
  body = visualize.grid([row])
  band = np.full((18, body.shape[1], 3), 255, np.uint8)
  cv2.putText(band, text, (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
  return np.concatenate([band, body], 0)


def _to_uint8(video: np.ndarray) -> np.ndarray:
  """Normalised clips [n, 8, H, W, 1] -> uint8 [n, 8, H, W] for display."""
  v = np.asarray(video, np.float32)[..., 0]
  lo = v.min(axis=(1, 2, 3), keepdims=True)
  hi = v.max(axis=(1, 2, 3), keepdims=True)
  return np.round(255 * (v - lo) / np.maximum(hi - lo, 1e-6)).astype(np.uint8)


def explain_clips(model, video: np.ndarray, names: Sequence[str], out_dir: str,
                  class_names: Sequence[str], regions: np.ndarray | None = None,
                  flows: np.ndarray | None = None, steps: int = IG_STEPS) -> dict[str, Any]:
  """Maps, pictures and (with `regions`) scores of clips; writes them to `out_dir`.

  Args:
    video: float32 [n, 8, 128, 128, 1] normalised clips.
    names: n names for the pictures (video ids).
    regions: [n, 128, 128] true moving regions, or None.
    flows: [n, 7, 128, 128, 2] MOL's flow to draw beside the maps, or None.

  Returns:
    {'clips': [{name, class, map_png}], 'region_scores': ... (with regions)}.
  """
  os.makedirs(out_dir, exist_ok=True)
  maps, classes = class_map(model, video, steps=steps)
  shown = _to_uint8(video)
  clips = []
  for i, name in enumerate(names):
    region = None if regions is None else regions[i]
    title = f'{name}: {class_names[int(classes[i])]}'
    picture = clip_picture(shown[i], maps[i], None if flows is None else flows[i], title,
                           region)
    path = visualize.save_png(os.path.join(out_dir, f'{_safe(name)}.png'), picture)
    clips.append({'name': str(name), 'class': class_names[int(classes[i])],
                  'map_png': os.path.basename(path)})
  np.savez_compressed(os.path.join(out_dir, 'maps.npz'), maps=maps, classes=classes,
                      names=np.asarray([str(n) for n in names]))
  result: dict[str, Any] = {'attribution': 'integrated gradients from the still clip',
                            'ig_steps': steps, 'smooth_sigma_px': SMOOTH_SIGMA, 'clips': clips}
  if regions is not None:
    result['region_scores'] = {
        'region_dilation_px': REGION_DILATION,
        'mol': score_maps(maps, regions),
        'frame_difference': score_maps(frame_difference_map(video), regions)}
    files.write_json(os.path.join(out_dir, 'region_scores.json'), result['region_scores'])
  return result


def _safe(name: str) -> str:
  return ''.join(c if c.isalnum() or c in '-_.' else '_' for c in str(name)) or 'clip'


class SubjectError(ValueError):
  """`--subject` names no subject of the dataset."""


def dataset_clips(dataset: str, data_dir: str | None, subject: str,
                  max_clips: int | None = None) -> dict[str, Any]:
  """The held-out clips of `subject` as evaluation sees them, with their
  moving regions in the crop when the records hold them."""
  subjects = sources.list_subjects(dataset, data_dir)
  if subject not in subjects:
    raise SubjectError(f'--subject {subject}: {dataset} has no subject {subject!r}; its '
                       f'subjects are {", ".join(subjects)}')
  video, names, regions = [], [], []
  crop = slice(clip_format.CROP_OFFSET, clip_format.CROP_OFFSET + clip_format.CROP_SIZE)
  for record, clip in input_pipeline.evaluation_clips(dataset, data_dir, [subject],
                                                      max_clips_per_subject=max_clips):
    video.append(clip['video'])
    names.append(record['video_id'])
    if 'moving_region' in record:
      regions.append(np.asarray(record['moving_region'])[crop, crop])
  if not video:
    raise FileNotFoundError(f'{dataset} has no clips of subject {subject!r}')
  return {'video': np.stack(video), 'names': names,
          'regions': np.stack(regions) if len(regions) == len(video) else None}


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(prog='python -m mol_jax.explain',
                                   description=__doc__.split('\n\n')[0])
  parser.add_argument('--checkpoint', required=True, metavar='DIR',
                      help='model directory (training: WORKDIR/folds/<subject>/model)')
  source = parser.add_mutually_exclusive_group(required=True)
  source.add_argument('--input', metavar='PATH', help='video file or folder of frames')
  source.add_argument('--dataset', help='built dataset, e.g. synthetic_me/demo')
  parser.add_argument('--data_dir', default=None, help='TFDS data dir of --dataset')
  parser.add_argument('--subject', default='', help='subject of --dataset (its held-out clips)')
  parser.add_argument('--max_clips', type=int, default=None, help='at most this many clips')
  parser.add_argument('--steps', type=int, default=IG_STEPS, help='integrated-gradients steps')
  parser.add_argument('--out', required=True, metavar='OUT', help='output folder')
  parser.add_argument('--verbose', action='store_true', help='print the traceback of an error')
  return parser


def main(argv: Sequence[str] | None = None) -> int:
  args = build_parser().parse_args(argv)
  if args.dataset and not args.subject:
    return exit_codes.report('--dataset needs --subject (the held-out subject of the '
                             'checkpoint)', exit_codes.USAGE)
  try:
    predictor = inference.from_checkpoint(args.checkpoint)
  except (FileNotFoundError, ValueError, KeyError, OSError) as e:
    return exit_codes.report(f'{args.checkpoint}: cannot load the model ({e})',
                             exit_codes.BAD_WEIGHTS, e, args.verbose)
  if args.dataset:
    try:
      clips = dataset_clips(args.dataset, args.data_dir, args.subject, args.max_clips)
    except SubjectError as e:
      return exit_codes.report(str(e), exit_codes.USAGE, e, args.verbose)
    except FileNotFoundError as e:
      return exit_codes.report(str(e), exit_codes.NO_INPUT, e, args.verbose)
    flows = predictor.predict_batched(clips['video'])['flow']
    result = explain_clips(predictor.model, clips['video'], clips['names'], args.out,
                           predictor.class_names, clips['regions'], flows, args.steps)
  else:
    try:
      prediction = predictor.predict_video(args.input, max_clips=args.max_clips or 8)
    except video_lib.VideoError as e:
      return exit_codes.report(str(e), e.exit_code, e, args.verbose)
    result = explain_prediction(predictor, prediction, args.out, args.steps)
  files.write_json(os.path.join(args.out, 'explain.json'), result)
  scores = result.get('region_scores')
  print(f"{len(result['clips'])} clip(s) explained in {args.out}"
        + (f"; MOL {scores['mol']}, frame difference {scores['frame_difference']}"
           if scores else ''))
  return exit_codes.OK


def explain_prediction(predictor, prediction, out_dir: str,
                       steps: int = IG_STEPS) -> dict[str, Any]:
  """Region maps of the clips of a `VideoPrediction` (what `predict --explain` adds)."""
  video = prediction.prepared.model_input()
  names = [f'clip{i}' for i in range(len(video))]
  return explain_clips(predictor.model, video, names, out_dir, predictor.class_names,
                       flows=prediction.flow, steps=steps)


if __name__ == '__main__':
  sys.exit(main())
