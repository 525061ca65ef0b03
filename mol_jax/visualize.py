"""Pictures of what MOL saw: flow colours, landmarks, probabilities, animations.

Everything returns uint8 RGB arrays (or a matplotlib figure for the chart),
so notebooks can show them and `save_report` can write them:

* `flow_to_color(flow)`: hue = direction, saturation = speed (the usual
  colour-wheel coding); `color_wheel()` is its legend.
* `draw_landmarks(frame, points)`: dots on a gray or colour frame.
* `clip_panel(prediction, i)`: one row per frame pair: frame i, frame i+1
  with dlib (green) and MOL (red) landmarks, MOL's flow, TV-L1's flow.
* `probability_chart(...)`: bar chart of the class probabilities.
* `clip_animation(...)`: GIF frames of a clip with its flow and landmarks.
* `save_report(prediction, out_dir)`: predictions.json and all pictures.
* `grid`, `shrink`, `image_bytes`: tiling, downscaling and encoding for
  notebooks.
"""

from __future__ import annotations

import os
import re
import shutil
from typing import Any, Sequence

import cv2
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from mol_jax import files, metrics

DLIB_COLOR = (60, 220, 60)
MOL_COLOR = (235, 50, 50)

# Speed (pixels per frame pair, 128x128 crop) drawn at full colour in the
# flow pictures of predictions. A fixed scale, so that a flow of 0.01 px
# (an untrained or undertrained flow head) stays white instead of being
# stretched to full colour; 1 px suits micro-expressions, whose TV-L1 flow
# between clip frames is mostly under 1-2 px. With TV-L1 flow the scale is
# its largest speed when that is larger (`flow_scale`), for both flows.
FLOW_FULL_SCALE_PX = 1.0


def flow_to_color(flow: np.ndarray, max_magnitude: float | None = None) -> np.ndarray:
  """Colour-wheel picture of a flow field.

  Args:
    flow: [H, W, 2], [..., 0] = x displacement (pixels), [..., 1] = y (down).
    max_magnitude: speed shown fully saturated (default: the field's maximum).
      Larger speeds are clipped.

  Returns:
    uint8 [H, W, 3] RGB: white = no motion, hue = direction (right red,
    down yellow-green, left cyan, up blue-violet), saturation = speed.
  """
  flow = np.asarray(flow, np.float32)
  if flow.ndim != 3 or flow.shape[-1] != 2:
    raise ValueError(f'flow must be [H, W, 2], got {flow.shape}')
  flow = np.nan_to_num(flow)
  magnitude = np.hypot(flow[..., 0], flow[..., 1])
  if max_magnitude is None:
    max_magnitude = float(magnitude.max())
  max_magnitude = max(float(max_magnitude), 1e-6)
  angle = np.arctan2(flow[..., 1], flow[..., 0]) % (2 * np.pi)
  hsv = np.empty(flow.shape[:2] + (3,), np.uint8)
  hsv[..., 0] = np.round(angle / (2 * np.pi) * 180).astype(np.int32) % 180
  hsv[..., 1] = np.round(np.clip(magnitude / max_magnitude, 0, 1) * 255).astype(np.uint8)
  hsv[..., 2] = 255
  return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def color_wheel(size: int = 64) -> np.ndarray:
  """Legend of `flow_to_color`: the colour of every direction and speed."""
  c = (size - 1) / 2
  y, x = np.mgrid[0:size, 0:size].astype(np.float32)
  flow = np.stack([x - c, y - c], -1)
  image = flow_to_color(flow, c)
  image[np.hypot(x - c, y - c) > c] = 255
  return image


def to_rgb(frame: np.ndarray) -> np.ndarray:
  """uint8 [H, W, 3] from a gray [H, W] / [H, W, 1] or RGB frame."""
  frame = np.asarray(frame)
  if frame.dtype != np.uint8:
    frame = np.clip(frame, 0, 255).astype(np.uint8)
  if frame.ndim == 3 and frame.shape[-1] == 1:
    frame = frame[..., 0]
  if frame.ndim == 2:
    frame = np.repeat(frame[..., None], 3, axis=-1)
  return np.ascontiguousarray(frame)


def upscale(image: np.ndarray, scale: int) -> np.ndarray:
  if scale == 1:
    return image
  return cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)


def draw_landmarks(frame: np.ndarray, points: np.ndarray,
                   color: Sequence[int] = MOL_COLOR, radius: float = 1.0,
                   scale: int = 1) -> np.ndarray:
  """Dots at (x, y) pixel positions on a copy of `frame`.

  Args:
    frame: gray or RGB frame (already `scale`d or not, see `scale`).
    points: [68, 2] (x, y) in the pixels of the unscaled frame.
    color: RGB.
    radius: dot radius in output pixels.
    scale: the frame is upscaled by this factor first (nearest neighbour), so
      sub-pixel positions stay visible.

  Returns:
    uint8 [H * scale, W * scale, 3].
  """
  image = upscale(to_rgb(frame), scale).copy()
  shift = 4  # Sub-pixel drawing: coordinates in 1/16 pixel.
  for x, y in np.asarray(points, np.float64).reshape(-1, 2):
    if not (np.isfinite(x) and np.isfinite(y)):
      continue
    centre = (int(round((x + 0.5) * scale * 16 - 8)), int(round((y + 0.5) * scale * 16 - 8)))
    cv2.circle(image, centre, int(round(radius * 16)), tuple(int(c) for c in color), -1,
               cv2.LINE_AA, shift)
  return image


def _label(image: np.ndarray, text: str, height: int = 16) -> np.ndarray:
  """`image` with a white caption strip above it."""
  strip = np.full((height, image.shape[1], 3), 255, np.uint8)
  scale = 0.35 * height / 16
  cv2.putText(strip, text, (3, height - 5), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1,
              cv2.LINE_AA)
  return np.concatenate([strip, image], axis=0)


def grid(rows: list[list[np.ndarray]], gap: int = 2) -> np.ndarray:
  """Tiles of equal size (uint8 RGB) in rows, with white gaps."""
  h, w = rows[0][0].shape[:2]
  cols = max(len(r) for r in rows)
  out = np.full((len(rows) * (h + gap) - gap, cols * (w + gap) - gap, 3), 255, np.uint8)
  for r, row in enumerate(rows):
    for c, tile in enumerate(row):
      out[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = tile
  return out


def clip_panel(prediction, clip: int = 0, scale: int = 2, pairs: Sequence[int] | None = None
               ) -> np.ndarray:
  """One row per frame pair of a clip of a `mol_jax.video.VideoPrediction`.

  Columns: frame i with its dlib landmarks (green); frame i+1 with dlib
  (green) and MOL (red) landmarks; MOL's flow i -> i+1; the TV-L1 flow when
  the prediction has it; both flows share one speed scale, written in the
  header with the colour wheel as legend: `flow_scale` (at least
  `FLOW_FULL_SCALE_PX`) is full colour, stated in the title.

  Returns:
    uint8 RGB image.
  """
  prepared = prediction.prepared
  frames = prepared.cropped[clip]
  dlib = prepared.cropped_landmarks[clip]
  flows = [('MOL flow', prediction.flow[clip])]
  if prediction.tvl1 is not None:
    flows.append(('TV-L1 flow', prediction.tvl1[clip]))
  speed = flow_scale(prediction, clip)
  pairs = range(frames.shape[0] - 1) if pairs is None else pairs
  fi = prepared.frame_indices[clip]
  mol_landmarks = prediction.landmarks[clip]
  # An untrained or mismatched model puts its landmarks anywhere (often all
  # in one corner): drawn, they read as a blob; say so instead.
  off = landmark_offset(mol_landmarks, dlib[1:])
  drawn = off <= OFF_FACE_NME
  rows = []
  for i in pairs:
    first = landmark_tile(frames[i], dlib[i], None, scale).copy()
    _corner_text(first, f'{int(fi[i])} -> {int(fi[i + 1])}')
    row = [first, landmark_tile(frames[i + 1], dlib[i + 1],
                                mol_landmarks[i] if drawn else None, scale)]
    row += [upscale(flow_to_color(f[i], speed), scale) for _, f in flows]
    rows.append(row)
  body = grid(rows)
  titles = (f'clip {clip}: frames {int(fi[0])}..{int(fi[-1])}, '
            f'MOL: {prediction.clip_label(clip)} '
            f'({prediction.probabilities[clip].max():.2f})')
  if bool(prediction.still_clips[clip]):
    titles += ' STILL: not meaningful'
  titles += f'; colour: {speed:.1f} px = full'
  if not drawn:
    titles += f'; MOL landmarks off the face ({off:.1f} eye distances from dlib), not drawn'
  columns = ['frame i (dlib green)', 'frame i+1 (MOL red)'] + [
      f'{name} (max {float(np.hypot(f[..., 0], f[..., 1]).max()):.2f} px)'
      for name, f in flows]
  return _with_header(body, frames.shape[-1] * scale, columns, titles)


def _with_header(body: np.ndarray, tile_width: int, columns: Sequence[str], title: str
                 ) -> np.ndarray:
  """`body` (a `grid` of tiles `tile_width` wide) under a title line and one
  caption per column, with the colour wheel as legend in a margin on the right."""
  header = grid([[_label(np.full((0, tile_width, 3), 255, np.uint8), c, 20) for c in columns]])
  wheel = cv2.resize(color_wheel(64), (header.shape[0] + 16, header.shape[0] + 16),
                     interpolation=cv2.INTER_AREA)
  top = _label(np.full((header.shape[0], body.shape[1], 3), 255, np.uint8), title, 24)
  top[-header.shape[0]:, :header.shape[1]] = header
  out = np.concatenate([top, np.full((2, body.shape[1], 3), 255, np.uint8), body], axis=0)
  margin = np.full((out.shape[0], wheel.shape[1] + 4, 3), 255, np.uint8)
  margin[:wheel.shape[0], 4:] = wheel
  return np.concatenate([out, margin], axis=1)


def flow_scale(prediction, clip: int) -> float:
  """Speed in pixels shown at full colour for both flows of a clip:
  `FLOW_FULL_SCALE_PX`, or the TV-L1 flow's largest speed when the
  prediction has it and it is larger. Never MOL's own maximum, which would
  show any flow, however small, at full colour."""
  speed = FLOW_FULL_SCALE_PX
  if prediction.tvl1 is not None:
    tvl1 = np.nan_to_num(np.asarray(prediction.tvl1[clip], np.float32))
    speed = max(speed, float(np.hypot(tvl1[..., 0], tvl1[..., 1]).max()))
  return speed


def flow_comparison_panel(frames: np.ndarray, flows: Sequence[tuple[str, np.ndarray]],
                          pairs: Sequence[int] | None = None, scale: int = 2,
                          title: str = '') -> np.ndarray:
  """Flow fields of one clip side by side on one speed scale, one row per frame pair.

  Args:
    frames: [8, H, W] (uint8 or float, shown rescaled to 0-255), the clip.
    flows: (name, [7, H, W, 2]) per column, e.g. MOL's flow, the exact
      motion, the TV-L1 targets. A column named 'truth' adds every other
      column's mean end-point error against it to its header.
    pairs: the frame pairs to show (default all).
    scale: upscaling of every tile.
    title: the first header line.

  Returns:
    uint8 RGB image: the second frame of each pair, then one column per flow,
    all in `flow_to_color`'s coding with full colour at the truth's largest
    speed (without a 'truth' column: that of every column but the first; the
    model's own flow never sets the scale, nor does one outlier of TV-L1's
    when the truth is there), and at least `FLOW_FULL_SCALE_PX`.
  """
  frames = np.asarray(frames, np.float32)
  lo, hi = float(frames.min()), float(frames.max())
  frames = np.round((frames - lo) / max(hi - lo, 1e-6) * 255).astype(np.uint8)
  fields = [(name, np.nan_to_num(np.asarray(f, np.float32))) for name, f in flows]
  truth = dict(fields).get('truth')
  references = [f for _, f in fields[1:]] if truth is None else [truth]
  speed = max([FLOW_FULL_SCALE_PX] + [float(np.hypot(f[..., 0], f[..., 1]).max())
                                      for f in references])
  pairs = range(frames.shape[0] - 1) if pairs is None else pairs
  rows = [[upscale(to_rgb(frames[i + 1]), scale)]
          + [upscale(flow_to_color(f[i], speed), scale) for _, f in fields] for i in pairs]
  columns = ['frame i+1']
  for name, f in fields:
    if truth is not None and name != 'truth':
      name += f' (EPE {float(np.linalg.norm(f - truth, axis=-1).mean()):.3f} px)'
    columns.append(name)
  return _with_header(grid(rows), rows[0][0].shape[1], columns,
                      (title + '; ' if title else '') + f'colour: {speed:.1f} px = full')


# Mean distance from dlib's landmarks, in eye distances, beyond which MOL's
# landmarks are not on the face at all (a trained model is near 0.02-0.05).
OFF_FACE_NME = 0.5


def landmark_offset(points: np.ndarray, reference: np.ndarray) -> float:
  """Mean landmark NME of `points` against `reference` ([..., 68, 2] each):
  mean point distance in units of the reference's inter-pupil distance."""
  return float(np.nanmean(metrics.landmark_nme(np.asarray(points, np.float64),
                                               np.asarray(reference, np.float64))))


def _corner_text(image: np.ndarray, text: str) -> None:
  """`text` in a white box at the top left of `image` (in place)."""
  size = 0.4
  (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, size, 1)
  image[:h + base + 4, :w + 6] = 255
  cv2.putText(image, text, (3, h + 2), cv2.FONT_HERSHEY_SIMPLEX, size, (0, 0, 0), 1,
              cv2.LINE_AA)


def landmark_tile(frame: np.ndarray, dlib_points: np.ndarray | None,
                  mol_points: np.ndarray | None, scale: int = 2) -> np.ndarray:
  """A frame upscaled by `scale` with dlib (green) and MOL (red) landmarks."""
  image = upscale(to_rgb(frame), scale)
  offset = (scale - 1) / 2
  for points, color in ((dlib_points, DLIB_COLOR), (mol_points, MOL_COLOR)):
    if points is not None:
      image = draw_landmarks(image, np.asarray(points) * scale + offset, color,
                             radius=max(1.0, scale / 2))
  return image


def probability_chart(probabilities: np.ndarray, class_names: Sequence[str],
                      clip_probabilities: np.ndarray | None = None, title: str = '',
                      path: str | None = None):
  """Bar chart of class probabilities (clips as dots when given).

  Returns:
    the matplotlib Figure (also written to `path` as PNG when given).
  """
  # A bare Figure (no pyplot): no GUI backend, nothing left open.
  probabilities = np.asarray(probabilities, np.float64)
  figure = Figure(figsize=(1.2 + 0.9 * len(class_names), 2.6), dpi=100)
  ax = figure.subplots()
  x = np.arange(len(class_names))
  best = int(np.argmax(probabilities))
  colors = ['#c0392b' if i == best else '#7f8c8d' for i in x]
  ax.bar(x, probabilities, color=colors, width=0.6, label='video (mean of clips)')
  if clip_probabilities is not None and len(clip_probabilities) > 1:
    clip_probabilities = np.asarray(clip_probabilities)
    jitter = np.linspace(-0.15, 0.15, len(clip_probabilities))
    for c in x:
      ax.scatter(c + jitter, clip_probabilities[:, c], s=8, color='black', zorder=3,
                 label='clips' if c == 0 else None)
    ax.legend(fontsize=7, loc='best')
  for c in x:
    ax.text(c, probabilities[c] + 0.02, f'{probabilities[c]:.2f}', ha='center', fontsize=8)
  ax.set_xticks(x, list(class_names), fontsize=8)
  ax.set_ylim(0, 1.1)
  ax.set_ylabel('probability', fontsize=8)
  ax.tick_params(axis='y', labelsize=7)
  if title:
    ax.set_title(title, fontsize=9)
  figure.tight_layout()
  if path is not None:
    figure.savefig(path)
  return figure


def figure_to_array(figure) -> np.ndarray:
  """uint8 RGB pixels of a matplotlib figure."""
  canvas = FigureCanvasAgg(figure)
  canvas.draw()
  return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def clip_animation(frames: np.ndarray, flows: np.ndarray, landmarks: np.ndarray | None = None,
                   dlib_landmarks: np.ndarray | None = None, path: str | None = None,
                   scale: int = 2, duration_ms: int = 300, colors: int = 256,
                   max_magnitude: float | None = None) -> list[np.ndarray]:
  """Animation of a clip: each frame beside the flow that led to it.

  Args:
    frames: [8, H, W] (or [8, H, W, 1]) gray frames.
    flows: [7, H, W, 2] flow of pair (i, i+1).
    landmarks: optional [7, 68, 2] MOL landmarks of frames 1..7 (red).
    dlib_landmarks: optional [8, 68, 2] landmarks of frames 0..7 (green).
    path: if given, written as a looping GIF.
    scale: pixel upscale.
    duration_ms: per frame.
    colors: palette size of the GIF (fewer: smaller file).
    max_magnitude: speed in pixels at full colour (default
      `FLOW_FULL_SCALE_PX`), written on the first flow tile.

  Returns:
    the animation frames, uint8 RGB.
  """
  frames = np.asarray(frames)
  speed = FLOW_FULL_SCALE_PX if max_magnitude is None else float(max_magnitude)
  images = []
  for t in range(len(frames)):
    image = landmark_tile(frames[t], None if dlib_landmarks is None else dlib_landmarks[t],
                          landmarks[t - 1] if landmarks is not None and t > 0 else None,
                          scale)
    flow = (upscale(flow_to_color(flows[t - 1], speed), scale) if t > 0
            else np.full_like(image, 255))
    tile = grid([[_label(image, f'frame {t}', 14),
                   _label(flow, f'flow {t - 1}->{t}' if t else f'{speed:.1f} px = full', 14)]])
    images.append(tile)
  if path is not None:
    # One palette for all frames, no dithering: smaller files, no flicker.
    palette = Image.fromarray(np.concatenate(images, axis=0)).quantize(
        colors, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    pil = [Image.fromarray(i).quantize(palette=palette, dither=Image.Dither.NONE)
           for i in images]
    pil[0].save(path, save_all=True, append_images=pil[1:], duration=duration_ms, loop=0,
                optimize=True)
  return images


def shrink(image: np.ndarray, max_side: int) -> np.ndarray:
  """`image` scaled down (area averaging) so that its longer side is <= max_side."""
  h, w = image.shape[:2]
  factor = max_side / max(h, w)
  if factor >= 1:
    return image
  return cv2.resize(image, (max(1, round(w * factor)), max(1, round(h * factor))),
                    interpolation=cv2.INTER_AREA)


def image_bytes(image, max_side: int | None = None, fmt: str = 'png',
                quality: int = 85) -> bytes:
  """PNG or JPEG bytes of a uint8 image or a matplotlib figure (for notebooks).

  Args:
    image: uint8 gray or RGB image, or a matplotlib figure.
    max_side: scale down so that the longer side is at most this.
    fmt: 'png' (lossless) or 'jpeg' (smaller for photographs).
    quality: JPEG quality.
  """
  if hasattr(image, 'savefig'):
    image = figure_to_array(image)
  image = to_rgb(image)
  if max_side:
    image = shrink(image, max_side)
  if fmt not in ('png', 'jpeg'):
    raise ValueError(f"fmt must be 'png' or 'jpeg', got {fmt!r}")
  params = ([cv2.IMWRITE_PNG_COMPRESSION, 9] if fmt == 'png'
            else [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
  ok, encoded = cv2.imencode('.' + fmt, cv2.cvtColor(image, cv2.COLOR_RGB2BGR), params)
  if not ok:
    raise ValueError(f'{fmt} encoding failed')
  return encoded.tobytes()


def save_png(path: str, image: np.ndarray) -> str:
  Image.fromarray(to_rgb(image)).save(path, optimize=True)
  return path


_REPORT_FILE = re.compile(r'(clip_\d+\.(png|gif)|probabilities\.png|predictions\.json)')


def remove_earlier_report(out_dir: str) -> list[str]:
  """Removes the files an earlier `save_report` (and `--explain`) wrote into
  `out_dir`, so that a reused folder never mixes two models' pictures;
  returns their names. Other files are left alone."""
  if not os.path.isdir(out_dir):
    return []
  removed = sorted(n for n in os.listdir(out_dir) if _REPORT_FILE.fullmatch(n))
  for name in removed:
    os.remove(os.path.join(out_dir, name))
  if os.path.isdir(os.path.join(out_dir, 'explain')):
    shutil.rmtree(os.path.join(out_dir, 'explain'))
    removed.append('explain/')
  return removed


def save_report(prediction, out_dir: str, scale: int = 2, gif: bool = True,
                extra: dict[str, Any] | None = None) -> dict[str, Any]:
  """Writes predictions.json and the pictures of a `VideoPrediction`.

  Files: `predictions.json`, `probabilities.png`, and per clip k
  `clip_kk.png` (`clip_panel`) and `clip_kk.gif` (`clip_animation`), all in
  `out_dir` (a relative one is relative to the current directory, as any
  path a user types; nothing is written anywhere else).

  Returns:
    the JSON written (with a `pictures` entry listing the files, relative
    to `out_dir`).
  """
  os.makedirs(out_dir, exist_ok=True)
  report = prediction.to_json()
  if extra:
    report.update(extra)
  pictures = {'probabilities': 'probabilities.png', 'clips': []}
  probability_chart(prediction.video_probabilities, prediction.class_names,
                    prediction.probabilities,
                    f'{os.path.basename(os.path.normpath(prediction.prepared.path))}: '
                    f'{prediction.label}' + (' (every clip still: not meaningful)'
                                             if prediction.still else ''),
                    os.path.join(out_dir, 'probabilities.png'))
  prepared = prediction.prepared
  for k in range(prepared.num_clips):
    entry = {'panel': f'clip_{k:02d}.png'}
    save_png(os.path.join(out_dir, entry['panel']), clip_panel(prediction, k, scale))
    if gif:
      entry['animation'] = f'clip_{k:02d}.gif'
      clip_animation(prepared.cropped[k], prediction.flow[k], prediction.landmarks[k],
                     prepared.cropped_landmarks[k], os.path.join(out_dir, entry['animation']),
                     scale, max_magnitude=flow_scale(prediction, k))
    pictures['clips'].append(entry)
    report['clips'][k]['pictures'] = entry
  report['pictures'] = pictures
  files.write_json(os.path.join(out_dir, 'predictions.json'), report, indent=1)
  return report
