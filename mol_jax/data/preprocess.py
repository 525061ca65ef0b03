"""Official MOL pre-processing: raw frame folders -> aligned 8-frame clips.

Pipeline for one video folder (behaviour of the official `dataset.py`):

1. `list_frames`: image files sorted by the number in their name
   (`img2.jpg` before `img10.jpg`).
2. `clip_indices`: with n frames and s = n // 8, clip j (j = 0..s-1) takes
   frames j, j + s, ..., j + 7s; videos with fewer than 8 frames give no clip.
3. Per sampled frame: dlib HOG detection (first face) and 68 landmarks
   (`faces.FaceDetector`), the eye-based alignment matrix
   (`faces.alignment_matrix`), `cv2.warpAffine` to 144x144 with border 128,
   then RGB -> gray. `align='per_frame'` (official) uses each frame's own
   landmarks; `align='per_clip'` uses one matrix from the clip's first
   (onset) frame's landmarks, which removes landmark jitter from the
   ~1 pixel motion and keeps the expression out of the alignment;
   `align='registered'` does the same, then warps the clip so that its
   onset landmarks land on one reference face shape (`mol_jax.data.registration`),
   so that every subject's brows, eyes and mouth sit at the same pixels.
4. `tvl1_flow`: OpenCV Dual TV-L1 with default parameters between
   consecutive aligned frames (7 fields, [..., 0] = x).

The result of a clip is a `Clip`: video uint8 [8, 144, 144, 1], flow float16
[7, 144, 144, 2], landmarks float32 [8, 68, 2] in the aligned frame, frame
indices int32 [8]. Cropping to 128x128 and normalisation happen later, in
`mol_jax.data.input_pipeline`.

Departures from the official code, all on bad input where it crashes: a frame
without a detected face reuses the nearest good box of the same clip (the
official code raises); a clip with no face at all, a corrupt image, a folder
with fewer than 8 frames or no frames is skipped and counted in a
`SkipSummary` with its reason.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import logging
import multiprocessing
import os
import re
import time
from typing import Callable, Iterable, Iterator, Sequence

import cv2
import numpy as np
import tqdm
from PIL import Image

from mol_jax import clip_format
from mol_jax.data import faces
from mol_jax.data import registration

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff')
ALIGN_MODES = ('per_frame', 'per_clip', 'registered')

# Skip reasons (stable keys of `SkipSummary.counts`).
EMPTY_FOLDER = 'empty_folder'
MISSING_FOLDER = 'missing_folder'
TOO_FEW_FRAMES = 'too_few_frames'
# A sheet row whose frame range cannot be used (a cell that is not a frame
# number, an offset before the onset).
INVALID_RANGE = 'invalid_frame_range'
# A sheet cell that names several emotion categories (4DME).
AMBIGUOUS_LABEL = 'ambiguous_label'
UNREADABLE_FRAME = 'unreadable_frame'
NO_FACE = 'no_face'
UNREGISTRABLE_FACE = 'unregistrable_face'
UNKNOWN_LABEL = 'unknown_label'
EXCLUDED_LABEL = 'label_not_in_class_set'

_NUMBER = re.compile(r'\d+')


class FrameError(Exception):
  """A frame file that cannot be decoded."""


class SkipClip(Exception):
  """A clip that cannot be built; `reason` is one of the skip keys above."""

  def __init__(self, reason: str, path: str, detail: str):
    super().__init__(f'{reason}: {path}: {detail}')
    self.reason = reason
    self.path = path
    self.detail = detail

  def __reduce__(self):  # Exceptions pickle `args` only; keep all fields.
    return SkipClip, (self.reason, self.path, self.detail)


@dataclasses.dataclass(frozen=True)
class PreprocessOptions:
  """Options of the pre-processing.

  Attributes:
    align: 'per_frame' (official: every frame aligned on its own landmarks)
      or 'per_clip' (one matrix from the landmarks of the clip's first,
      onset frame) or 'registered' (per_clip, then a warp of the onset
      landmarks onto the reference face shape, `mol_jax.data.registration`;
      the stored `matrices` are then the affine part).
    upsample: HOG detector upsampling (official: 1).
    size: aligned frame side (official: 144).
    box_scale: five-point box growth (official: 2.5).
    border_value: warpAffine border (official: 128).
    reuse_box: if True, a frame without a detected face uses the nearest good
      box of its clip; if False, such a clip is skipped.
    max_clips_per_video: keep at most this many of the s clips of a video,
      evenly spaced (None: all, as the official code).
    stretch_short_videos: a video of 2..7 frames gives one clip of 8 frames
      evenly spaced over it, some repeated (`short_clip_indices`); False
      (official): it is skipped. For sets filmed at 30 fps (CAS(ME)^3),
      where many micro-expressions last fewer than 8 frames.
  """
  align: str = 'per_frame'
  upsample: int = 1
  size: int = clip_format.STORED_SIZE
  box_scale: float = faces.BOX_SCALE
  border_value: int = faces.BORDER_VALUE
  reuse_box: bool = True
  max_clips_per_video: int | None = None
  stretch_short_videos: bool = False

  def __post_init__(self):
    if self.align not in ALIGN_MODES:
      raise ValueError(f'align must be one of {ALIGN_MODES}, got {self.align!r}.')
    if self.max_clips_per_video is not None and self.max_clips_per_video < 1:
      raise ValueError('max_clips_per_video must be >= 1 or None, got '
                       f'{self.max_clips_per_video}.')


@dataclasses.dataclass
class ClipGeometry:
  """Where the points of a clip's raw frames land in its stored frames.

  Attributes:
    matrices: float64 [T, 2, 3] raw -> aligned affine matrix of each frame.
    registration: the piecewise-affine warp applied after the matrices
      (`align='registered'`), else None.
    size: side of the stored frames.
  """
  matrices: np.ndarray
  registration: 'registration.Registration | None'
  size: int

  def to_stored(self, points: np.ndarray, frame: int) -> np.ndarray:
    """[..., 2] raw-frame (x, y) points of frame `frame` -> stored-frame pixels."""
    aligned = faces.transform_points(np.asarray(points, np.float64), self.matrices[frame])
    return aligned if self.registration is None else self.registration.points(aligned)

  def grid_in_raw(self, frame: int) -> np.ndarray:
    """[size, size, 2]: the raw-frame point that each stored pixel of `frame` shows."""
    if self.registration is None:
      aligned = np.stack(np.meshgrid(np.arange(self.size), np.arange(self.size)),
                         -1).astype(np.float64)
    else:
      aligned = self.registration.sample_points
    return faces.transform_points(aligned, faces.invert_affine(self.matrices[frame]))


@dataclasses.dataclass
class Clip:
  """One pre-processed 8-frame clip.

  Attributes:
    video: uint8 [8, size, size, 1] aligned gray frames.
    flow: float16 [7, size, size, 2] TV-L1 flow from frame i to i + 1,
      [..., 0] = x.
    landmarks: float32 [8, 68, 2] (x, y) in the aligned frames.
    frame_indices: int32 [8] positions in the numerically sorted frame list.
    matrices: float32 [8, 2, 3] raw -> aligned affine matrix of each frame.
    geometry: raw -> stored frames, registration included.
    reused_boxes: number of frames whose face box was borrowed.
    timings: seconds spent in 'read', 'detect', 'align', 'flow'.
    extra: features the builder's annotator added (`ClipProcessor`).
  """
  video: np.ndarray
  flow: np.ndarray
  landmarks: np.ndarray
  frame_indices: np.ndarray
  matrices: np.ndarray
  geometry: ClipGeometry | None = None
  reused_boxes: int = 0
  timings: dict[str, float] = dataclasses.field(default_factory=dict)
  extra: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class ClipJob:
  """Work unit for a worker: the 8 frame paths of one clip."""
  key: str
  paths: tuple[str, ...]
  frame_indices: tuple[int, ...]


def frame_number(path: str | os.PathLike[str]) -> int:
  """The last integer in a frame's file name ('img46.jpg' -> 46, 'x_3_0012.jpg' -> 12)."""
  stem = os.path.splitext(os.path.basename(path))[0]
  numbers = _NUMBER.findall(stem)
  if not numbers:
    raise ValueError(f'{path}: frame file name has no number; frames are '
                     'ordered by the number in their name (e.g. img12.jpg).')
  return int(numbers[-1])


def list_frames(folder: str | os.PathLike[str]) -> list[str]:
  """Image files of a video folder in numeric order.

  Raises:
    SkipClip: MISSING_FOLDER or EMPTY_FOLDER.
  """
  folder = os.fspath(folder)
  if not os.path.isdir(folder):
    raise SkipClip(MISSING_FOLDER, folder, 'not a folder')
  names = [n for n in os.listdir(folder)
           if n.lower().endswith(IMAGE_EXTENSIONS) and not n.startswith('.')]
  if not names:
    raise SkipClip(EMPTY_FOLDER, folder, 'no image files ('
                   + ', '.join(IMAGE_EXTENSIONS) + ')')
  # Ties (e.g. 'a1.jpg' and 'b1.jpg') fall back to the name, so the order is
  # deterministic on every file system.
  names.sort(key=lambda n: (frame_number(n), n))
  return [os.path.join(folder, n) for n in names]


def clip_indices(num_frames: int, clip_length: int = clip_format.NUM_FRAMES,
                 max_clips: int | None = None) -> np.ndarray:
  """Frame indices of the official clips of a video.

  Args:
    num_frames: n, frames in the video.
    clip_length: frames per clip (8).
    max_clips: keep at most this many clips, evenly spaced over j.

  Returns:
    int32 [s, clip_length] with row j = j + s * arange(clip_length),
    s = num_frames // clip_length (0 rows when num_frames < clip_length).
  """
  stride = num_frames // clip_length
  starts = np.arange(stride)
  if max_clips is not None and stride > max_clips:
    starts = np.unique(np.linspace(0, stride - 1, max_clips).round()).astype(int)
  return (starts[:, None] + stride * np.arange(clip_length)[None]).astype(np.int32)


def short_clip_indices(num_frames: int, clip_length: int = clip_format.NUM_FRAMES
                       ) -> np.ndarray:
  """int32 [1, clip_length]: the nearest frame at clip_length evenly spaced
  times over a video shorter than a clip, first and last frame included
  (5 frames -> 0 1 1 2 2 3 3 4)."""
  return np.round(np.linspace(0, num_frames - 1, clip_length))[None].astype(np.int32)


def read_rgb(path: str) -> np.ndarray:
  """Decodes an image file fully to [H, W, 3] uint8 RGB.

  PIL raises on truncated JPEGs, where OpenCV returns a partly grey image
  with only a warning.

  Raises:
    FrameError: the file cannot be decoded.
  """
  try:
    with Image.open(path) as image:
      return np.asarray(image.convert('RGB'))
  except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
    raise FrameError(f'{path}: cannot decode image ({e}); replace or delete '
                     'the file.') from e


def tvl1_flow(frames: np.ndarray) -> np.ndarray:
  """Dual TV-L1 flow between consecutive frames, OpenCV default parameters.

  Args:
    frames: uint8 [T, H, W] gray frames.

  Returns:
    float32 [T - 1, H, W, 2]: flow[i] maps frame i to frame i + 1,
    frames[i](p) ~ frames[i + 1](p + flow[i](p)), [..., 0] = x.
  """
  tvl1 = cv2.optflow.DualTVL1OpticalFlow_create()
  return np.stack([tvl1.calc(frames[i], frames[i + 1], None)
                   for i in range(len(frames) - 1)])


def _fill_boxes(boxes: list[np.ndarray | None]) -> tuple[list[np.ndarray], int]:
  """Replaces missing boxes by the previous good one (the next for leading gaps)."""
  good = [i for i, b in enumerate(boxes) if b is not None]
  filled, reused = [], 0
  for i, box in enumerate(boxes):
    if box is None:
      earlier = [g for g in good if g < i]
      box = boxes[earlier[-1]] if earlier else boxes[good[0]]
      reused += 1
    filled.append(box)
  return filled, reused


@dataclasses.dataclass
class AlignedClip:
  """Aligned frames of a clip, before flow.

  Attributes:
    gray: uint8 [T, size, size] aligned gray frames.
    landmarks: float32 [T, 68, 2] landmarks in the aligned frames.
    raw_landmarks: float32 [T, 68, 2] landmarks in the raw frames.
    matrices: float64 [T, 2, 3] raw -> aligned matrices.
    reused_boxes: frames whose face box was borrowed.
    registration: the warp after the matrices (`align='registered'`), else None.
  """
  gray: np.ndarray
  landmarks: np.ndarray
  raw_landmarks: np.ndarray
  matrices: np.ndarray
  reused_boxes: int
  registration: 'registration.Registration | None' = None

  @property
  def geometry(self) -> ClipGeometry:
    return ClipGeometry(self.matrices, self.registration, self.gray.shape[-1])


def align_clip(images: Sequence[np.ndarray], detector: faces.FaceDetector,
               options: PreprocessOptions = PreprocessOptions(),
               path: str = '', timings: dict[str, float] | None = None
               ) -> AlignedClip:
  """Detects, aligns and converts to gray the frames of one clip.

  Args:
    images: T RGB frames, [H, W, 3] uint8.
    detector: face detector.
    options: pre-processing options.
    path: named in errors.
    timings: if given, 'detect' and 'align' seconds are added to it.

  Raises:
    SkipClip: NO_FACE, or UNREGISTRABLE_FACE (`align='registered'` only).
  """
  t = time.perf_counter()
  boxes = [detector.detect(image) for image in images]
  if all(b is None for b in boxes):
    raise SkipClip(NO_FACE, path, f'no face found in any of the {len(images)} '
                   'frames of the clip')
  if any(b is None for b in boxes) and not options.reuse_box:
    missing = [i for i, b in enumerate(boxes) if b is None]
    raise SkipClip(NO_FACE, path, f'no face in clip frame(s) {missing}')
  boxes, reused = _fill_boxes(boxes)
  raw_landmarks = np.stack([detector.landmarks(image, box)
                            for image, box in zip(images, boxes)])
  t_detect = time.perf_counter() - t

  t = time.perf_counter()
  try:
    aligned = align_frames(images, raw_landmarks, options, reused)
  except registration.FoldedWarp as e:
    raise SkipClip(UNREGISTRABLE_FACE, path, f'{e} (align={options.align!r}; '
                   "'per_clip' keeps such clips)") from None
  if timings is not None:
    timings['detect'] = timings.get('detect', 0.0) + t_detect
    timings['align'] = timings.get('align', 0.0) + time.perf_counter() - t
  return aligned


def align_frames(images: Sequence[np.ndarray], raw_landmarks: np.ndarray,
                 options: PreprocessOptions = PreprocessOptions(),
                 reused_boxes: int = 0) -> AlignedClip:
  """Aligns the frames of a clip whose landmarks are already known.

  The second half of `align_clip` (which detects, then calls this), for
  callers that detect faces once per frame and reuse them across clips
  (`mol_jax.video`).

  Args:
    images: T RGB frames, [H, W, 3] uint8.
    raw_landmarks: [T, 68, 2] dlib landmarks of each frame.
    options: pre-processing options (`align`, `size`, `box_scale`,
      `border_value` are used).
    reused_boxes: recorded in the result.
  """
  raw_landmarks = np.asarray(raw_landmarks)
  if options.align == 'per_frame':
    matrices = np.stack([faces.alignment_matrix(lm, options.size, options.box_scale)
                         for lm in raw_landmarks])
  else:
    # The first (onset) frame alone: it precedes the expression, so the
    # clip's position and scale cannot depend on it. A matrix from the mean
    # of all 8 frames moves with the mouth corners, and so would put the
    # class into every frame's static geometry (docs/DATA.md).
    matrix = faces.alignment_matrix(raw_landmarks[0], options.size,
                                    options.box_scale)
    matrices = np.repeat(matrix[None], len(images), axis=0)
  landmarks = np.stack([faces.transform_points(lm.astype(np.float64), m)
                        for lm, m in zip(raw_landmarks, matrices)])
  warp = None
  if options.align == 'registered':
    warp = registration.Registration(landmarks[0], options.size, options.box_scale)
    # One resampling of the raw frame: registered pixel -> aligned -> raw.
    raw_points = faces.transform_points(warp.sample_points,
                                        faces.invert_affine(matrices[0]))
    map_x, map_y = (raw_points[..., i].astype(np.float32) for i in range(2))
    gray = np.stack([
        faces.rgb_to_gray(cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_CONSTANT,
                                    borderValue=(options.border_value,) * 3))
        for image in images])
    landmarks = warp.points(landmarks)
  else:
    # Warp the colour frame, then convert, as the official code does.
    gray = np.stack([
        faces.rgb_to_gray(faces.warp(image, m, options.size, options.border_value))
        for image, m in zip(images, matrices)])
  return AlignedClip(gray, landmarks.astype(np.float32), raw_landmarks,
                     matrices, reused_boxes, warp)


def read_clip(paths: Sequence[str]) -> list[np.ndarray]:
  """Decodes the frames of a clip.

  Raises:
    SkipClip: UNREADABLE_FRAME, naming the file.
  """
  images = []
  for path in paths:
    try:
      images.append(read_rgb(path))
    except FrameError as e:
      raise SkipClip(UNREADABLE_FRAME, path, str(e.__cause__)) from e
  return images


def process_clip(paths: Sequence[str], frame_indices: Sequence[int],
                 detector: faces.FaceDetector,
                 options: PreprocessOptions = PreprocessOptions()) -> Clip:
  """Aligns 8 frames, transforms their landmarks and computes TV-L1 flow.

  Args:
    paths: the clip's frame files, in order.
    frame_indices: their positions in the video's sorted frame list.
    detector: face detector (its own `upsample` is used).
    options: pre-processing options.

  Returns:
    The `Clip`.

  Raises:
    SkipClip: UNREADABLE_FRAME, NO_FACE or UNREGISTRABLE_FACE.
  """
  timings = {}
  t = time.perf_counter()
  images = read_clip(paths)
  timings['read'] = time.perf_counter() - t
  aligned = align_clip(images, detector, options, os.path.dirname(paths[0]),
                       timings)
  t = time.perf_counter()
  flow = tvl1_flow(aligned.gray)
  timings['flow'] = time.perf_counter() - t
  return Clip(video=aligned.gray[..., None],
              flow=flow.astype(np.float16),
              landmarks=aligned.landmarks,
              frame_indices=np.asarray(frame_indices, np.int32),
              matrices=aligned.matrices.astype(np.float32),
              geometry=aligned.geometry,
              reused_boxes=aligned.reused_boxes,
              timings=timings)


def plan_video(folder: str, key_prefix: str,
               options: PreprocessOptions = PreprocessOptions(),
               onset: int | None = None, offset: int | None = None
               ) -> list[ClipJob]:
  """Lists a video's frames and returns one job per official clip.

  Args:
    folder: the video's frame folder.
    key_prefix: the jobs' keys start with it (the video id).
    options: pre-processing options.
    onset, offset: keep only the frames whose file number (`frame_number`)
      is in [onset, offset], for a micro-expression inside a longer video
      (CAS(ME)^3); None: that end of the folder. The clips are then sampled
      from those frames alone, and `frame_indices` count within them.

  Raises:
    SkipClip: MISSING_FOLDER, EMPTY_FOLDER, INVALID_RANGE or TOO_FEW_FRAMES.
  """
  if onset is not None and offset is not None and onset > offset:
    raise SkipClip(INVALID_RANGE, folder,
                   f'onset {onset} is after offset {offset}; fix the coding sheet')
  frames = list_frames(folder)
  where = ''
  if onset is not None or offset is not None:
    low = -np.inf if onset is None else onset
    high = np.inf if offset is None else offset
    frames = [f for f in frames if low <= frame_number(f) <= high]
    where = (f' numbered in [{"start" if onset is None else onset}, '
             f'{"end" if offset is None else offset}]')
  if len(frames) >= clip_format.NUM_FRAMES:
    rows = clip_indices(len(frames), clip_format.NUM_FRAMES, options.max_clips_per_video)
  elif options.stretch_short_videos and len(frames) >= 2:
    rows = short_clip_indices(len(frames))
  else:
    needs = '2 (stretched)' if options.stretch_short_videos else str(clip_format.NUM_FRAMES)
    raise SkipClip(TOO_FEW_FRAMES, folder, f'{len(frames)} frame(s){where}, a clip needs {needs}')
  jobs = []
  for row in rows:
    jobs.append(ClipJob(key=f'{key_prefix}_c{int(row[0]):03d}',
                        paths=tuple(frames[i] for i in row),
                        frame_indices=tuple(int(i) for i in row)))
  return jobs


class SkipSummary:
  """Counts and logs what was skipped, and why, during a build."""

  def __init__(self, name: str = 'pre-processing'):
    self.name = name
    self.counts: collections.Counter[str] = collections.Counter()
    self.examples: dict[str, list[str]] = collections.defaultdict(list)
    self.clips_built = 0
    self.reused_boxes = 0

  def skip(self, reason: str, path: str, detail: str = '') -> None:
    self.counts[reason] += 1
    self.examples[reason].append(path)
    logging.warning('Skipped (%s) %s: %s', reason, path, detail)

  def built(self, reused_boxes: int) -> None:
    """Counts a built clip, `reused_boxes` of whose frames borrowed a face box."""
    self.clips_built += 1
    self.reused_boxes += reused_boxes

  def report(self) -> str:
    lines = [f'{self.name}: {self.clips_built} clip(s) built, '
             f'{self.reused_boxes} frame(s) used a borrowed face box, '
             f'{sum(self.counts.values())} item(s) skipped.']
    for reason, count in sorted(self.counts.items()):
      shown = ', '.join(self.examples[reason][:3])
      more = ' ...' if count > 3 else ''
      lines.append(f'  {reason}: {count} ({shown}{more})')
    return '\n'.join(lines)

  def log(self) -> None:
    # Printed rather than logged: it is the build's result, and must show
    # whatever the logging configuration.
    print(self.report(), flush=True)


# Per worker process: the detector (dlib models load once per process).
_WORKER_STATE: dict[str, object] = {}


def worker_detector(options: PreprocessOptions,
                    model_path: str | None = None) -> faces.FaceDetector:
  """The face detector of a process that builds clips beside others.

  Loaded once per process (the dlib model is 100 MB, ~3 s): by the pool's
  workers here and by the Beam workers of `mol_jax.data.beam_build`.
  """
  # Parallelism comes from processes; threads inside OpenCV would oversubscribe.
  cv2.setNumThreads(1)
  return faces.FaceDetector(options.upsample, model_path)


def _init_worker(options: PreprocessOptions, model_path: str | None,
                 annotate: Callable[[ClipJob, Clip], dict] | None) -> None:
  _WORKER_STATE['options'] = options
  _WORKER_STATE['detector'] = worker_detector(options, model_path)
  _WORKER_STATE['annotate'] = annotate


def process_job(job: ClipJob, detector: faces.FaceDetector, options: PreprocessOptions,
                annotate: Callable[[ClipJob, Clip], dict] | None = None
                ) -> tuple[ClipJob, Clip | SkipClip]:
  """Builds one clip job: what every way of running the jobs runs per clip.

  Returns:
    (job, the `Clip` with its annotator's `extra`) or (job, the `SkipClip`
    that says why the clip cannot be built): a skip is a result, not an
    error, so that one bad clip does not end a build.
  """
  try:
    clip = process_clip(job.paths, job.frame_indices, detector, options)
  except SkipClip as e:
    return job, e
  if annotate is not None:
    clip.extra = annotate(job, clip)
  clip.geometry = None  # Used by `annotate` only; not sent back.
  return job, clip


def _run_job(job: ClipJob) -> tuple[ClipJob, Clip | SkipClip]:
  return process_job(job, _WORKER_STATE['detector'], _WORKER_STATE['options'],
                     _WORKER_STATE['annotate'])


def default_num_workers() -> int:
  return max(1, len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity')
             else (os.cpu_count() or 1))


class ClipProcessor:
  """Builds clips in a process pool that lives across calls to `run`.

  TFDS consumes one split generator after another; sharing one pool across
  them avoids paying the worker start-up (importing the package and loading
  the 100 MB dlib model, ~3-5 s) once per subject. Jobs are submitted with a
  bounded look-ahead, so a consumer that stops early (e.g.
  `--max_examples_per_split`) leaves little work queued.
  """

  def __init__(self, options: PreprocessOptions = PreprocessOptions(),
               num_workers: int | None = None, model_path: str | None = None,
               progress: str | None = None, total: int | None = None,
               annotate: Callable[[ClipJob, Clip], dict] | None = None):
    """Initialises the processor.

    Args:
      options: pre-processing options.
      annotate: optional picklable function of (job, clip) run beside each
        clip (in its worker), whose dict becomes `clip.extra`: how a builder
        adds features of its own (synthetic_me: the true motion).
      num_workers: worker processes; 0 runs in this process; None: all cores.
      model_path: dlib landmark model (default: the packaged one).
      progress: progress bar title, or None for no bar.
      total: number of jobs, for the progress bar.
    """
    self.options = options
    self.num_workers = default_num_workers() if num_workers is None else num_workers
    self.model_path = model_path
    self.annotate = annotate
    self._pool = None
    self._detector = None
    self._bar = tqdm.tqdm(total=total, desc=progress, unit='clip',
                          disable=progress is None, mininterval=2.0)

  def __enter__(self) -> 'ClipProcessor':
    return self

  def __exit__(self, *exc) -> None:
    self.close()

  def close(self) -> None:
    if self._pool is not None:
      self._pool.terminate()
      self._pool.join()
      self._pool = None
    self._bar.close()

  def _process_here(self, job: ClipJob) -> tuple[ClipJob, Clip | SkipClip]:
    if self._detector is None:
      self._detector = faces.FaceDetector(self.options.upsample, self.model_path)
    return process_job(job, self._detector, self.options, self.annotate)

  def run(self, jobs: Iterable[ClipJob]
          ) -> Iterator[tuple[ClipJob, Clip | SkipClip]]:
    """Yields (job, Clip) or (job, SkipClip) in the order of `jobs`."""
    if self.num_workers == 0:
      for job in jobs:
        result = self._process_here(job)
        self._bar.update()
        yield result
      return
    if self._pool is None:
      # 'spawn' rather than fork: the parent has usually imported JAX, whose
      # threads make fork unsafe.
      context = multiprocessing.get_context('spawn')
      self._pool = context.Pool(self.num_workers, initializer=_init_worker,
                                initargs=(self.options, self.model_path, self.annotate))
    pending = collections.deque()
    jobs = iter(jobs)
    for job in itertools.islice(jobs, 2 * self.num_workers):
      pending.append(self._pool.apply_async(_run_job, (job,)))
    while pending:
      result = pending.popleft().get()
      for job in itertools.islice(jobs, 1):
        pending.append(self._pool.apply_async(_run_job, (job,)))
      self._bar.update()
      yield result


def run_jobs(jobs: Sequence[ClipJob],
             options: PreprocessOptions = PreprocessOptions(),
             num_workers: int | None = None,
             progress: str | None = None) -> list[tuple[ClipJob, Clip | SkipClip]]:
  """Processes clip jobs with a temporary `ClipProcessor`; results in order."""
  with ClipProcessor(options, num_workers, progress=progress,
                     total=len(jobs)) as processor:
    return list(processor.run(jobs))
