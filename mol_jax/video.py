"""A person's own video as model-ready clips, prepared as the dataset builders do.

`prepare_video(path)` is the pre-processing of `mol_jax.predict` and
`Predictor.predict_video` (`mol_jax.inference`); this module never sees a
model. PATH is a video file (anything OpenCV's `cv2.VideoCapture`
decodes: mp4, mov, avi, ...) or a folder of frames (image files, ordered by
the number in their names as the builders order them, or by name when a name
has no number).

Steps (see docs/INFERENCE.md):

1. Every frame is decoded once and goes through the builders' face
   detection: dlib's HOG detector (first face, upsample 1 by default) and
   the 68 landmarks (`mol_jax.data.faces.FaceDetector`). Frames where no face is
   found, or that cannot be decoded, are dropped; the rest are the *usable*
   frames, in order. A video file is read up to the frame count its
   container lists: a frame the decoder fails on (a damaged file) is counted
   as unreadable and decoding goes on with the next one, so the counts say
   how much of the video was seen.
2. Clips of 8 usable frames are sampled with the builders' rule
   (`mol_jax.data.preprocess.clip_indices`): a window of n frames gives
   s = n // 8 clips, clip j taking frames j, j + s, ..., j + 7s.
   `window=0` (default) treats the whole video as one window, as the
   builders treat one dataset video, keeping at most `max_clips` of the s
   clips (evenly spaced in j, as `max_clips_per_video` does). `window=W`
   slides windows of W usable frames every `hop` frames (default W // 2,
   the last window ends on the last frame) and takes clip j = 0 of each, so
   every clip covers W frames of time; at most `max_clips` windows, evenly
   spaced.
3. Each clip is aligned as the builders align it (`align='per_frame'`,
   official, `'per_clip'` or `'registered'`; `mol_jax.data.preprocess.align_frames`), gray,
   144x144, then centre-cropped to 128x128 at (8, 8) as in evaluation.
   A clip that cannot be aligned (e.g. a face that cannot be registered) is
   skipped and recorded in `PreparedVideo.skipped_clips`; the video fails
   only when no clip is left.
4. Motion: a clip whose face does not move (`motion` below `STILL_MOTION`)
   is `still`: the model's class probabilities say nothing about it.
5. Normalisation as `mol_jax.data.input_pipeline` does per subject, with the
   video as the subject: over every pixel of the cropped frames of all
   sampled clips, video = (x - mean) / (max - mean).

Errors are `VideoError`s with an `exit_code` (docs/EXIT_CODES.md).
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Any, Iterator, Sequence

import cv2
import numpy as np
import tqdm

from mol_jax import clip_format, exit_codes
from mol_jax.data import faces
from mol_jax.data import preprocess
from mol_jax.data import registration

VIDEO_EXTENSIONS = ('.mp4', '.mov', '.avi', '.mkv', '.m4v', '.webm', '.mpg',
                    '.mpeg', '.wmv', '.flv', '.3gp')


class VideoError(Exception):
  """An input that cannot give a clip; the message names the file."""
  exit_code = exit_codes.FAILED

  def __init__(self, path: str, detail: str):
    super().__init__(f'{path}: {detail}')
    self.path = path
    self.detail = detail


class UnreadableInput(VideoError):
  """Missing file or folder, or nothing in it can be decoded."""
  exit_code = exit_codes.NO_INPUT


class NoFaceFound(VideoError):
  """No face in any frame."""
  exit_code = exit_codes.NO_FACE


class TooFewFrames(VideoError):
  """Fewer than 8 frames with a face."""
  exit_code = exit_codes.TOO_FEW_FRAMES


class NoUsableClip(NoFaceFound):
  """Faces were found, but every sampled clip had to be skipped."""


# A clip is still when the largest mean absolute difference between two
# consecutive frames of it (uint8 scale, 128x128 crop, frames aligned with
# one matrix, blurred by a Gaussian of STILL_BLUR_SIGMA px: see
# `clip_motion`) is below this. Measured, every clip of each video, with each
# of the three alignments (they agree within 0.05):
#   one photograph repeated (frame folder, PNG or JPEG): 0.00;
#   a still photograph as a video, codec noise only: 0.00-0.32 (MJPG avi),
#   0.37-0.38 (mp4v mp4); with camera-like noise (Gaussian, sigma 2 or 4
#   gray levels, new in every frame) then mp4v: 0.47-0.49 and 0.57-0.61,
#   then JPEG frames (quality 90): 0.48-0.49;
#   `python -m mol_jax.data.synthetic --write_video` micro-expressions
#   (positive, surprise, negative; avi and mp4; 256 and 192 px): 1.08-3.34
#   over the whole video, 1.10-3.31 with windows of 16 or 24 frames.
# Without the blur the noise of a still video reaches 2.1 while the
# micro-expressions start at 1.8, and frames aligned one by one
# (`per_frame`) differ by the landmarks' jitter alone by up to 9: neither
# separates still from moving, hence one matrix and the blur.
STILL_MOTION = 0.8
STILL_BLUR_SIGMA = 2.0


# ----------------------------------------------------------------------------
# Reading frames.


def _natural_key(name: str):
  return [int(t) if t.isdigit() else t.lower() for t in re.split(r'(\d+)', name)]


def frame_paths(folder: str) -> list[str]:
  """Image files of a frame folder, in the builders' numeric order.

  Names without a number fall back to natural name order.

  Raises:
    UnreadableInput: no image file in the folder.
  """
  try:
    return preprocess.list_frames(folder)
  except preprocess.SkipClip as e:
    raise UnreadableInput(folder, e.detail) from None
  except ValueError:
    names = [n for n in os.listdir(folder)
             if n.lower().endswith(preprocess.IMAGE_EXTENSIONS) and not n.startswith('.')]
    return [os.path.join(folder, n) for n in sorted(names, key=_natural_key)]


class FrameSource:
  """The frames of a video file or of a folder of images, as RGB uint8.

  Iterating yields (index, frame or None when the frame cannot be decoded).
  A video file is decoded sequentially; `read(indices)` decodes it again and
  keeps only the frames asked for, so a long video is never held in memory.
  """

  def __init__(self, path: str, max_frames: int | None = None):
    self.path = os.fspath(path)
    self.max_frames = max_frames or None
    self.fps: float | None = None
    # Frames the video file's container lists (None for folders or unknown).
    self.container_frames: int | None = None
    if not os.path.exists(self.path):
      raise UnreadableInput(self.path, 'no such file or folder')
    if os.path.isdir(self.path):
      self.kind = 'folder'
      self._paths = frame_paths(self.path)[:self.max_frames]
    else:
      self.kind = 'video'
      capture = self._open()
      fps = capture.get(cv2.CAP_PROP_FPS)
      count = capture.get(cv2.CAP_PROP_FRAME_COUNT)
      capture.release()
      self.fps = float(fps) if fps and np.isfinite(fps) and fps > 0 else None
      # Streams without an index report 0 or -1: then the decoder's end is
      # the only end there is.
      self.container_frames = (int(count) if count and np.isfinite(count) and count > 0
                               else None)

  def _open(self) -> cv2.VideoCapture:
    if not os.access(self.path, os.R_OK):
      raise UnreadableInput(self.path, 'permission denied')
    capture = cv2.VideoCapture(self.path)
    if not capture.isOpened():
      raise UnreadableInput(
          self.path, 'OpenCV cannot open it as a video (supported: '
          + ', '.join(VIDEO_EXTENSIONS) + ' and other formats of your OpenCV '
          'build, or a folder of frames)')
    return capture

  def __iter__(self) -> Iterator[tuple[int, np.ndarray | None]]:
    if self.kind == 'folder':
      first = None
      for i, path in enumerate(self._paths):
        try:
          frame = preprocess.read_rgb(path)
        except preprocess.FrameError:
          yield i, None
          continue
        # Frames of several sizes are frames of several videos (or crops).
        first = first or (path, frame.shape[:2])
        if frame.shape[:2] != first[1]:
          raise UnreadableInput(
              path, f'is {frame.shape[1]}x{frame.shape[0]} pixels but '
              f'{os.path.basename(first[0])} is {first[1][1]}x{first[1][0]}: the frames of one '
              'video share one size; put each video in its own folder')
        yield i, frame
      return
    capture = self._open()
    listed = self.container_frames
    try:
      i = 0
      while self.max_frames is None or i < self.max_frames:
        ok, frame = capture.read()
        if not ok:
          # Before the end the container lists, a failed read is a damaged
          # frame: the decoder moves past it and often decodes the next
          # ones (mp4), or keeps failing to the end (avi); either way each
          # listed frame is counted, decoded or not.
          if listed is None or i >= listed:
            break
          yield i, None
        else:
          yield i, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        i += 1
    finally:
      capture.release()

  def read(self, indices: Sequence[int]) -> dict[int, np.ndarray]:
    """{index: RGB frame} for the given frame indices."""
    wanted = set(int(i) for i in indices)
    if self.kind == 'folder':
      return {i: preprocess.read_rgb(self._paths[i]) for i in sorted(wanted)}
    frames = {}
    for i, frame in self:
      if i in wanted and frame is not None:
        frames[i] = frame
        if len(frames) == len(wanted):
          break
    missing = wanted - set(frames)
    if missing:
      raise UnreadableInput(self.path, f'frames {sorted(missing)[:5]} could not be '
                            'decoded a second time')
    return frames


# ----------------------------------------------------------------------------
# Faces and clips.


@dataclasses.dataclass
class FaceTrack:
  """Face detection over every frame of a video.

  Attributes:
    num_frames: frames decoded.
    landmarks: float32 [num_frames, 68, 2] dlib landmarks (NaN: no face).
    unreadable: frames that could not be decoded.
    without_face: decodable frames where no face was found.
    frame_shape: (H, W) of the frames.
  """
  num_frames: int
  landmarks: np.ndarray
  unreadable: list[int]
  without_face: list[int]
  frame_shape: tuple[int, int] | None

  @property
  def usable(self) -> np.ndarray:
    """Indices of the frames with a face, in order."""
    return np.flatnonzero(~np.isnan(self.landmarks[:, 0, 0]))


def track_faces(source: FrameSource, detector: faces.FaceDetector,
                progress: bool = False) -> FaceTrack:
  """Detects the face and its landmarks in every frame (first face, as the builders).

  Raises:
    UnreadableInput: no frame could be decoded.
  """
  landmarks, unreadable, without_face, shape = [], [], [], None
  bar = tqdm.tqdm(desc='faces', unit='frame', disable=not progress, mininterval=2.0)
  for i, frame in source:
    bar.update()
    if frame is None:
      unreadable.append(i)
      landmarks.append(np.full((clip_format.NUM_LANDMARKS, 2), np.nan, np.float32))
      continue
    shape = shape or frame.shape[:2]
    box = detector.detect(frame)
    if box is None:
      without_face.append(i)
      landmarks.append(np.full((clip_format.NUM_LANDMARKS, 2), np.nan, np.float32))
    else:
      landmarks.append(detector.landmarks(frame, box))
  bar.close()
  if not landmarks or len(unreadable) == len(landmarks):
    what = 'no frame' if not landmarks else f'none of its {len(landmarks)} frames'
    raise UnreadableInput(source.path, f'{what} could be decoded')
  return FaceTrack(len(landmarks), np.stack(landmarks).astype(np.float32),
                   unreadable, without_face, shape)


def sample_clips(num_frames: int, window: int = 0, hop: int | None = None,
                 max_clips: int | None = 8) -> np.ndarray:
  """Positions of the sampled clips in a list of `num_frames` usable frames.

  Args:
    num_frames: usable frames (>= 8).
    window: 0: the whole list is one window and gives the builders' s =
      n // 8 clips; W > 0: windows of W frames (W >= 8), clip j = 0 of each.
    hop: start of one window to the next (default W // 2).
    max_clips: keep at most this many clips, evenly spaced (None or 0: all).

  Returns:
    int32 [num_clips, 8], increasing within a row.
  """
  if num_frames < clip_format.NUM_FRAMES:
    raise ValueError(f'{num_frames} frames; a clip needs {clip_format.NUM_FRAMES}')
  if window < 0 or 0 < window < clip_format.NUM_FRAMES:
    raise ValueError(f'window must be 0 or >= {clip_format.NUM_FRAMES}, got {window}')
  if hop is not None and hop < 1:
    raise ValueError(f'hop must be >= 1, got {hop}')
  max_clips = max_clips or None
  if window == 0:
    return preprocess.clip_indices(num_frames, clip_format.NUM_FRAMES, max_clips)
  window = min(window, num_frames)
  hop = hop or max(1, window // 2)
  starts = list(range(0, num_frames - window + 1, hop))
  if starts[-1] != num_frames - window:
    starts.append(num_frames - window)
  if max_clips is not None and len(starts) > max_clips:
    keep = np.unique(np.linspace(0, len(starts) - 1, max_clips).round()).astype(int)
    starts = [starts[k] for k in keep]
  first = preprocess.clip_indices(window, clip_format.NUM_FRAMES, 1)[0]
  return np.stack([s + first for s in starts]).astype(np.int32)


@dataclasses.dataclass
class PreparedVideo:
  """The clips of a video, pre-processed as the dataset builders do.

  Attributes:
    path: the input.
    kind: 'video' or 'folder'.
    fps: frames per second of a video file (None for folders or unknown).
    track: face detection over all frames.
    frame_indices: int32 [c, 8] clip frames, indices into the decoded frames.
    aligned: uint8 [c, 8, 144, 144] aligned gray frames.
    landmarks: float32 [c, 8, 68, 2] dlib landmarks in the aligned frames.
    matrices: float64 [c, 8, 2, 3] raw -> aligned matrices.
    options: the pre-processing options.
    sampling: how the clips were chosen (window, hop, max_clips, ...).
    mean, scale: normalisation, video = (x - mean) / scale.
    motion: float32 [c] `clip_motion` of each clip (gray levels).
    skipped_clips: the sampled clips that could not be prepared, each
      {'frames': [8 frame indices], 'reason': one line}.
    container_frames: frames the video file's container lists (None for
      folders or when unknown).
  """
  path: str
  kind: str
  fps: float | None
  track: FaceTrack
  frame_indices: np.ndarray
  aligned: np.ndarray
  landmarks: np.ndarray
  matrices: np.ndarray
  options: preprocess.PreprocessOptions
  sampling: dict[str, Any]
  mean: float
  scale: float
  motion: np.ndarray | None = None
  skipped_clips: list[dict[str, Any]] = dataclasses.field(default_factory=list)
  container_frames: int | None = None

  @property
  def num_clips(self) -> int:
    return len(self.frame_indices)

  @property
  def still(self) -> np.ndarray:
    """bool [c]: clips without motion (`STILL_MOTION`)."""
    if self.motion is None:
      return np.zeros(self.num_clips, bool)
    return np.asarray(self.motion) < STILL_MOTION

  @property
  def cropped(self) -> np.ndarray:
    """uint8 [c, 8, 128, 128]: the evaluation crop at (8, 8)."""
    o = clip_format.CROP_OFFSET
    return self.aligned[:, :, o:o + clip_format.CROP_SIZE, o:o + clip_format.CROP_SIZE]

  @property
  def cropped_landmarks(self) -> np.ndarray:
    """float32 [c, 8, 68, 2]: dlib landmarks in the crop's pixels."""
    return self.landmarks - np.float32(clip_format.CROP_OFFSET)

  def model_input(self) -> np.ndarray:
    """float32 [c, 8, 128, 128, 1], normalised."""
    return ((self.cropped.astype(np.float32) - self.mean) / self.scale)[..., None]


def prepare_video(path: str, *, window: int = 0, hop: int | None = None,
                  max_clips: int | None = 8, align: str = 'per_frame',
                  upsample: int = 1, max_frames: int | None = None,
                  detector: faces.FaceDetector | None = None,
                  progress: bool = False) -> PreparedVideo:
  """Reads, detects, samples and aligns the clips of a video (steps 1-4 above).

  A clip that cannot be aligned is left out and listed in
  `skipped_clips`; only when none is left does the video fail.

  Raises:
    UnreadableInput, NoFaceFound (NoUsableClip when every clip was skipped),
    TooFewFrames.
  """
  source = FrameSource(path, max_frames)
  detector = detector or faces.FaceDetector(upsample)
  track = track_faces(source, detector, progress)
  usable = track.usable
  decoded = track.num_frames - len(track.unreadable)
  if len(usable) == 0:
    raise NoFaceFound(source.path, f'no face found in any of its {decoded} decodable '
                      f'frame(s) (dlib HOG detector, upsample {detector.upsample}); '
                      'upsample 2 finds smaller faces; a face upside down or on '
                      'its side is not found: rotate the video upright first')
  if len(usable) < clip_format.NUM_FRAMES:
    raise TooFewFrames(source.path, f'{len(usable)} frame(s) with a face '
                       f'(of {track.num_frames}); a clip needs {clip_format.NUM_FRAMES}')
  positions = sample_clips(len(usable), window, hop, max_clips)
  frame_indices = usable[positions].astype(np.int32)
  options = preprocess.PreprocessOptions(align=align, upsample=detector.upsample)
  frames = source.read(np.unique(frame_indices))
  aligned, landmarks, matrices, motion, kept, skipped = [], [], [], [], [], []
  for row in frame_indices:
    images = [frames[i] for i in row]
    try:
      clip = preprocess.align_frames(images, track.landmarks[row], options)
    except registration.FoldedWarp as e:
      skipped.append({'frames': row.tolist(),
                      'reason': _one_line(f'the face cannot be registered ({e})')})
      continue
    except preprocess.SkipClip as e:
      skipped.append({'frames': row.tolist(), 'reason': _one_line(f'{e.reason}: {e.detail}')})
      continue
    except (ValueError, cv2.error) as e:
      skipped.append({'frames': row.tolist(), 'reason': _one_line(f'cannot be aligned ({e})')})
      continue
    kept.append(row)
    aligned.append(clip.gray)
    landmarks.append(clip.landmarks)
    matrices.append(clip.matrices)
    motion.append(clip_motion(_one_matrix_gray(images, clip, options)))
  if not kept:
    reasons = '; '.join(dict.fromkeys(s['reason'] for s in skipped))
    raise NoUsableClip(source.path, f'all {len(skipped)} clip(s) were skipped: {reasons}')
  frame_indices = np.stack(kept).astype(np.int32)
  aligned = np.stack(aligned)
  o = clip_format.CROP_OFFSET
  crop = aligned[:, :, o:o + clip_format.CROP_SIZE, o:o + clip_format.CROP_SIZE]
  mean = float(crop.mean(dtype=np.float64))
  scale = float(crop.max()) - mean
  if scale <= 0:
    raise NoFaceFound(source.path, 'every pixel of the aligned clips has the same value')
  sampling = {'window': int(window), 'hop': (int(hop or max(1, min(window, len(usable)) // 2))
                                             if window else None),
              'max_clips': max_clips or None,
              'rule': ('builders: s = n // 8 clips of the whole video, clip j = frames '
                       'j, j+s, ..., j+7s' if window == 0 else
                       'windows of W usable frames every hop frames, clip j = 0 of each'),
              'usable_frames': int(len(usable))}
  return PreparedVideo(source.path, source.kind, source.fps, track, frame_indices, aligned,
                       np.stack(landmarks), np.stack(matrices), options, sampling, mean, scale,
                       np.asarray(motion, np.float32), skipped, source.container_frames)


def _one_line(text: str) -> str:
  return ' '.join(str(text).split())


def _one_matrix_gray(images: Sequence[np.ndarray], clip: preprocess.AlignedClip,
                     options: preprocess.PreprocessOptions) -> np.ndarray:
  """uint8 [8, size, size]: the clip's frames aligned with one matrix.

  `per_clip` and `registered` clips already are; `per_frame` frames are
  warped again with the first frame's matrix, so that the landmarks' jitter
  from frame to frame does not count as motion.
  """
  if options.align != 'per_frame':
    return clip.gray
  return np.stack([faces.rgb_to_gray(faces.warp(image, clip.matrices[0], options.size,
                                                options.border_value))
                   for image in images])


def clip_motion(gray: np.ndarray) -> float:
  """How much a clip moves: the largest mean absolute difference between
  consecutive frames (uint8 gray levels) of the 128x128 evaluation crop,
  after a Gaussian blur of `STILL_BLUR_SIGMA` px that averages away pixel
  noise (codec, camera) but keeps the moving edges of a face.

  Args:
    gray: uint8 [T, size, size] frames aligned with one matrix.
  """
  o = clip_format.CROP_OFFSET
  crop = np.asarray(gray, np.float32)[:, o:o + clip_format.CROP_SIZE,
                                      o:o + clip_format.CROP_SIZE]
  smooth = np.stack([cv2.GaussianBlur(f, (0, 0), STILL_BLUR_SIGMA) for f in crop])
  return float(np.abs(np.diff(smooth, axis=0)).mean(axis=(1, 2)).max())


def tvl1_flows(prepared: PreparedVideo) -> np.ndarray:
  """float32 [c, 7, 128, 128, 2]: Dual TV-L1 flow of every clip (the training target),
  in the evaluation crop (about 1 s per clip on a CPU core)."""
  o = clip_format.CROP_OFFSET
  return np.stack([preprocess.tvl1_flow(clip)[:, o:o + clip_format.CROP_SIZE, o:o + clip_format.CROP_SIZE]
                   for clip in prepared.aligned]).astype(np.float32)
