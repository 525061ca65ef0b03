"""`synthetic_me`: a micro-expression set that needs no licence.

Faces come from the real photograph that scikit-image ships
(`skimage.data.astronaut()`), turned into distinct synthetic subjects by
mirroring, a small head pose (roll, scale, offset), a smooth face-shape warp
anchored on the landmarks, lighting (gain, gamma, colour, a side light) and
camera noise. Each video (30-60 frames by default) carries one onset-apex-
offset micro-motion built as a smooth displacement field anchored on the 68
landmarks and following FACS action units:

* surprise: AU1 + AU2 (inner and outer brow raiser);
* positive: AU12 (lip corner puller), with AU6 (cheek raiser) half the time;
* negative: one of AU4 (brow lowerer), AU15 (lip corner depressor), AU9 (nose
  wrinkler) or AU14 (dimpler).

The peak displacement is drawn in `amplitude_px` (pixels at the 144-pixel
aligned scale). Nuisance shared by all classes: blinks, sub-pixel head drift
(translation and roll), lighting flicker, sensor noise and JPEG compression.
Every subject has the same number of videos per class, and everything but the
action units is drawn independently of the class, so the label is carried by
the facial micro-motion only.

Motion model. Frame t shows `frame_t(q) = base(q - d_t(q))` for every output
pixel q, with d_t a sum of Gaussian radial basis displacements plus an affine
head term (see `Motion`). A point of the face at base position b is shown at
the q that solves q - d_t(q) = b, so the exact flow from frame t0 to frame t1
at pixel q is q1 - q where q1 - d_t1(q1) = q - d_t0(q) (`true_flow`, solved by
fixed-point iteration; |grad d| < 1 makes it converge).

Output (written atomically: a temporary folder renamed when complete):

  <out>/frames/<emotion>/<video>/img<N>.jpg   the official MOL layout
  <out>/truth/<video>.npz                     the `Motion` of every video
  <out>/manifest.json                         config, subjects, videos
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import shutil
import tempfile
from typing import Sequence

import cv2
import numpy as np

from mol_jax import clip_format
from mol_jax.data import faces
from mol_jax.data import preprocess
from mol_jax.data import registration

CLASSES = ('surprise', 'positive', 'negative')
NEGATIVE_AUS = ('AU4', 'AU15', 'AU9', 'AU14')
MANIFEST = 'manifest.json'


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
  """Size and randomness of a synthetic set.

  Attributes:
    num_subjects: synthetic subjects (one LOSO fold each).
    videos_per_class: videos of each class per subject.
    min_frames, max_frames: video length range (inclusive).
    amplitude_px: range of the peak action-unit displacement, in pixels of
      the 144x144 aligned frame.
    frame_size: side of the square raw frames.
    blink_probability: chance that a video contains a blink.
    drift_px: peak head drift, pixels at the aligned scale.
    noise_std: sensor noise (gray levels, Gaussian).
    jpeg_quality: quality of the written frames.
    seed: everything is a function of it.
  """
  num_subjects: int = 4
  videos_per_class: int = 6
  min_frames: int = 30
  max_frames: int = 60
  amplitude_px: tuple[float, float] = (1.0, 3.0)
  frame_size: int = 192
  blink_probability: float = 0.4
  drift_px: float = 0.4
  noise_std: float = 2.0
  jpeg_quality: int = 92
  seed: int = 0

  def __post_init__(self):
    if not 8 <= self.min_frames <= self.max_frames:
      raise ValueError('Need 8 <= min_frames <= max_frames, got '
                       f'{self.min_frames}, {self.max_frames}.')
    if self.num_subjects < 1 or self.videos_per_class < 1:
      raise ValueError('num_subjects and videos_per_class must be >= 1.')
    lo, hi = self.amplitude_px
    if not 0 < lo <= hi <= 6:
      raise ValueError(f'amplitude_px must satisfy 0 < lo <= hi <= 6, got '
                       f'{self.amplitude_px}.')


SMALL = SyntheticConfig(num_subjects=2, videos_per_class=1, min_frames=16,
                        max_frames=20)


@dataclasses.dataclass
class Motion:
  """Displacement fields of one video, in raw-frame pixels.

  d_t(q) = sum_k coeffs[t, k] * vectors[k] * exp(-|q - centers[k]|^2 / (2 sigmas[k]^2))
           + head[t, :, :2] @ q + head[t, :, 2]

  Attributes:
    centers: float64 [K, 2] (x, y) anchors.
    vectors: float64 [K, 2] unit-amplitude displacement of each anchor.
    sigmas: float64 [K] radii.
    coeffs: float64 [T, K] per-frame weight of each anchor.
    head: float64 [T, 2, 3] affine head displacement (zero = no motion).
  """
  centers: np.ndarray
  vectors: np.ndarray
  sigmas: np.ndarray
  coeffs: np.ndarray
  head: np.ndarray

  def save(self, path: str) -> None:
    np.savez_compressed(path, **dataclasses.asdict(self))

  @classmethod
  def load(cls, path: str) -> 'Motion':
    # A file object: TFDS's builder tests allow np.load on nothing else.
    with open(path, 'rb') as file, np.load(file) as data:
      return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls)})

  @property
  def num_frames(self) -> int:
    return self.coeffs.shape[0]

  def displacement(self, t: int, points: np.ndarray) -> np.ndarray:
    """d_t at [..., 2] (x, y) points; returns [..., 2]."""
    shape = points.shape
    p = points.reshape(-1, 2).astype(np.float64)
    d2 = ((p[:, None, :] - self.centers[None]) ** 2).sum(-1)
    weights = np.exp(-d2 / (2 * self.sigmas[None] ** 2)) * self.coeffs[t][None]
    out = weights @ self.vectors + p @ self.head[t, :, :2].T + self.head[t, :, 2]
    return out.reshape(shape)


def true_flow(motion: Motion, t0: int, t1: int, points: np.ndarray,
              iterations: int = 8) -> np.ndarray:
  """Exact displacement from frame t0 to frame t1 of content at `points`.

  Args:
    motion: the video's motion.
    t0, t1: frame numbers (positions in the sorted frame list).
    points: [..., 2] (x, y) pixel positions in frame t0.
    iterations: fixed-point iterations (the error shrinks geometrically with
      the field's gradient, < 0.3 here).

  Returns:
    [..., 2] flow such that content at p in frame t0 is at p + flow in t1.
  """
  base = points - motion.displacement(t0, points)
  q = points + motion.displacement(t1, points) - motion.displacement(t0, points)
  for _ in range(iterations):
    q = base + motion.displacement(t1, q)
  return q - points


def position_at(motion: Motion, t: int, base_points: np.ndarray,
                iterations: int = 8) -> np.ndarray:
  """Where content at `base_points` of the subject's image is shown in frame t.

  Solves q - d_t(q) = b by fixed-point iteration; [..., 2] -> [..., 2].
  """
  q = base_points + motion.displacement(t, base_points)
  for _ in range(iterations):
    q = base_points + motion.displacement(t, q)
  return q


def render(base: np.ndarray, motion: Motion, t: int,
           basis: np.ndarray | None = None) -> np.ndarray:
  """frame_t(q) = base(q - d_t(q)); base [H, W, 3] float32 -> [H, W, 3] float32.

  Args:
    base: the subject's image.
    motion: the video's motion.
    t: frame number.
    basis: optional `grid_basis(motion, H, W)`, shared by all frames of a video.
  """
  h, w = base.shape[:2]
  grid = _grid(h, w)
  if basis is None:
    displacement = motion.displacement(t, grid)
  else:
    displacement = (np.einsum('nk,kc->nc', basis * motion.coeffs[t][None],
                              motion.vectors).reshape(h, w, 2)
                    + grid @ motion.head[t, :, :2].T + motion.head[t, :, 2])
  source = (grid - displacement).astype(np.float32)
  return cv2.remap(base, source[..., 0], source[..., 1], cv2.INTER_LINEAR,
                   borderMode=cv2.BORDER_REFLECT)


def grid_basis(motion: Motion, height: int, width: int) -> np.ndarray:
  """Radial basis of every anchor on the pixel grid: [H * W, K]."""
  p = _grid(height, width).reshape(-1, 2)
  d2 = ((p[:, None, :] - motion.centers[None]) ** 2).sum(-1)
  return np.exp(-d2 / (2 * motion.sigmas[None] ** 2))


@functools.lru_cache(maxsize=4)
def _grid(height: int, width: int) -> np.ndarray:
  """(x, y) of every pixel: float64 [H, W, 2]."""
  grid = np.stack(np.meshgrid(np.arange(width), np.arange(height)), -1)
  grid = grid.astype(np.float64)
  grid.flags.writeable = False
  return grid


def _face_axes(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Unit vectors (right, up) of the face, in image coordinates."""
  eyes = landmarks[clip_format.RIGHT_EYE].mean(0) - landmarks[clip_format.LEFT_EYE].mean(0)
  right = eyes / np.linalg.norm(eyes)
  return right, np.array([right[1], -right[0]])


def _rbf_field(points, centers, vectors, sigmas):
  d2 = ((points[:, None] - centers[None]) ** 2).sum(-1)
  return np.exp(-d2 / (2 * sigmas[None] ** 2)) @ vectors


@dataclasses.dataclass
class Subject:
  """A synthetic identity: base image and its landmarks in the raw frame."""
  name: str
  image: np.ndarray  # float32 [S, S, 3], 0..255.
  landmarks: np.ndarray  # float64 [68, 2].
  scale: float  # raw -> aligned pixel scale (the alignment's zoom).


def make_subject(index: int, config: SyntheticConfig) -> Subject:
  """Builds subject `index` (mirroring, pose, face shape, lighting)."""
  photo, photo_landmarks = registration.astronaut_face()
  size = config.frame_size
  detector = faces.FaceDetector(upsample=1)
  for attempt in range(20):
    rng = np.random.default_rng([config.seed, 1, index, attempt])
    mirror = bool((index + (config.seed % 2)) % 2)
    angle = np.deg2rad(rng.uniform(-8, 8))
    zoom = rng.uniform(1.05, 1.35)
    centre = photo_landmarks[[36, 45, 30, 48, 54]].mean(0)
    # Photo -> raw frame: mirror about the face centre, roll, zoom, place the
    # face near the frame centre with a random offset.
    mx = -1.0 if mirror else 1.0
    c, s = np.cos(angle) * zoom, np.sin(angle) * zoom
    linear = np.array([[c, -s], [s, c]]) @ np.diag([mx, 1.0])
    target = size / 2 + rng.uniform(-0.06, 0.06, 2) * size + [0, 0.05 * size]
    pose = np.hstack([linear, (target - linear @ centre)[:, None]])
    image = cv2.warpAffine(photo, pose, (size, size), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REFLECT).astype(np.float32)
    landmarks = faces.transform_points(photo_landmarks, pose)

    # Face-shape warp: random smooth displacement of landmark groups (jaw,
    # brows, eyes, nose, mouth), up to ~6 % of the inter-ocular distance.
    iod = float(clip_format.inter_pupil_distance(landmarks))
    groups = [range(0, 17), range(17, 27), range(36, 48), range(27, 36),
              range(48, 68)]
    centres, vectors = [], []
    for group in groups:
      shift = rng.normal(0, 0.03 * iod, 2)
      spread = rng.normal(0, 0.03, 1)[0]
      pts = landmarks[list(group)]
      mean = pts.mean(0)
      centres.append(pts)
      vectors.append(shift + spread * (pts - mean))
    centres, vectors = np.concatenate(centres), np.concatenate(vectors)
    sigmas = np.full(len(centres), 0.18 * iod)
    grid = np.stack(np.meshgrid(np.arange(size), np.arange(size)), -1)
    grid = grid.reshape(-1, 2).astype(np.float64)
    field = _rbf_field(grid, centres, vectors, sigmas)
    # Normalise where the anchors overlap so the warp stays smooth.
    norm = _rbf_field(grid, centres, np.ones((len(centres), 1)), sigmas)
    field = (field / np.maximum(norm, 1.0)).reshape(size, size, 2)
    source = (grid.reshape(size, size, 2) - field).astype(np.float32)
    image = cv2.remap(image, source[..., 0], source[..., 1], cv2.INTER_LINEAR,
                      borderMode=cv2.BORDER_REFLECT)

    # Lighting: gain, gamma, colour balance and a soft side light.
    gain = rng.uniform(0.75, 1.15)
    gamma = rng.uniform(0.8, 1.25)
    tint = rng.uniform(0.9, 1.1, 3)
    side = rng.uniform(-0.3, 0.3)
    ramp = 1 + side * (np.arange(size) / (size - 1) - 0.5)
    image = 255 * (np.clip(image / 255, 0, 1) ** gamma)
    image = np.clip(image * gain * tint * ramp[None, :, None], 0, 255)
    image = image.astype(np.float32)

    # Landmarks of the finished face come from dlib itself, as for real data.
    box = detector.detect(image.round().astype(np.uint8))
    if box is None:
      continue
    landmarks = detector.landmarks(image.round().astype(np.uint8), box)
    landmarks = landmarks.astype(np.float64)
    scale = float(np.linalg.norm(faces.alignment_matrix(landmarks)[:, 0]))
    return Subject(f'sy{index + 1:02d}', image, landmarks, scale)
  raise RuntimeError(f'Could not build synthetic subject {index}: dlib found no '
                     'face in 20 attempts; reduce the pose/lighting ranges.')


def _action_unit(au: str, lm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Anchors, unit displacement vectors and radii of one action unit."""
  right, up = _face_axes(lm)
  iod = float(clip_format.inter_pupil_distance(lm))
  mid_x = lm[27:31, :].mean(0)  # nose bridge: the face's midline.

  def toward_midline(p):
    side = np.sign((p - mid_x) @ right)
    return -side[:, None] * right[None]

  if au == 'AU1':  # Inner brow raiser.
    p = lm[[20, 21, 22, 23]]
    v = np.tile(up, (4, 1)) * np.array([[0.6], [1.0], [1.0], [0.6]])
    r = 0.14
  elif au == 'AU2':  # Outer brow raiser.
    p = lm[[17, 18, 25, 26]]
    v = np.tile(up, (4, 1)) * np.array([[0.8], [1.0], [1.0], [0.8]])
    r = 0.14
  elif au == 'AU4':  # Brow lowerer: down and together.
    p = lm[[19, 20, 21, 22, 23, 24]]
    v = -0.8 * up[None] + 0.6 * toward_midline(p)
    r = 0.13
  elif au == 'AU6':  # Cheek raiser: below the lower eyelids.
    p = np.stack([0.6 * lm[41] + 0.4 * lm[48], 0.6 * lm[46] + 0.4 * lm[54]])
    v = np.tile(0.7 * up, (2, 1))
    r = 0.2
  elif au == 'AU12':  # Lip corner puller: up and out.
    p = lm[[48, 54, 49, 53]]
    out = -toward_midline(p)
    v = (0.8 * up[None] + 0.6 * out) * np.array([[1.0], [1.0], [0.5], [0.5]])
    r = 0.13
  elif au == 'AU15':  # Lip corner depressor.
    p = lm[[48, 54, 59, 55]]
    v = np.tile(-up, (4, 1)) * np.array([[1.0], [1.0], [0.5], [0.5]])
    r = 0.13
  elif au == 'AU9':  # Nose wrinkler: nose wings and upper lip up.
    p = lm[[31, 35, 29, 50, 52]]
    v = np.tile(up, (5, 1)) * np.array([[1.0], [1.0], [0.6], [0.5], [0.5]])
    r = 0.12
  elif au == 'AU14':  # Dimpler: corners tighten inward.
    p = lm[[48, 54]]
    v = toward_midline(p) * 0.9 + 0.2 * up[None]
    r = 0.13
  else:
    raise ValueError(f'Unknown action unit {au!r}.')
  return p, v, np.full(len(p), r * iod)


def class_action_units(label: str, rng: np.random.Generator) -> list[str]:
  """The action units of one video of class `label`."""
  if label == 'surprise':
    return ['AU1', 'AU2']
  if label == 'positive':
    return ['AU12', 'AU6'] if rng.random() < 0.5 else ['AU12']
  if label == 'negative':
    return [NEGATIVE_AUS[rng.integers(len(NEGATIVE_AUS))]]
  raise ValueError(f'Unknown synthetic class {label!r}; expected one of {CLASSES}.')


def _profile(n: int, onset: float, apex: float, offset: float) -> np.ndarray:
  """Raised-cosine onset -> apex -> offset curve over frames 0..n-1, peak 1."""
  t = np.arange(n, dtype=np.float64)
  rise = np.clip((t - onset) / max(apex - onset, 1e-6), 0, 1)
  fall = np.clip((offset - t) / max(offset - apex, 1e-6), 0, 1)
  return np.where(t <= apex, 0.5 - 0.5 * np.cos(np.pi * rise),
                  0.5 - 0.5 * np.cos(np.pi * fall))


def make_motion(subject: Subject, label: str, num_frames: int,
                config: SyntheticConfig, rng: np.random.Generator
                ) -> tuple[Motion, dict[str, object]]:
  """Action-unit micro-motion plus nuisance for one video."""
  lm = subject.landmarks
  size = config.frame_size
  aus = class_action_units(label, rng)
  parts = [_action_unit(au, lm) for au in aus]
  centres = np.concatenate([p[0] for p in parts])
  vectors = np.concatenate([p[1] for p in parts])
  sigmas = np.concatenate([p[2] for p in parts])
  # Scale the action-unit field so its peak equals the drawn amplitude
  # (converted from aligned to raw pixels).
  amplitude = rng.uniform(*config.amplitude_px)
  grid = np.stack(np.meshgrid(np.arange(0, size, 2), np.arange(0, size, 2)), -1)
  peak = np.linalg.norm(_rbf_field(grid.reshape(-1, 2).astype(np.float64),
                                   centres, vectors, sigmas), axis=-1).max()
  vectors = vectors * (amplitude / subject.scale / peak)
  onset = rng.uniform(0.1, 0.35) * num_frames
  apex = onset + rng.uniform(0.15, 0.3) * num_frames
  offset = min(apex + rng.uniform(0.15, 0.3) * num_frames, num_frames - 1.0)
  coeffs = np.repeat(_profile(num_frames, onset, apex, offset)[:, None],
                     len(centres), axis=1)

  # Blink: upper lids down, lower lids slightly up, over 3-5 frames.
  blink_frame = None
  if rng.random() < config.blink_probability:
    _, up = _face_axes(lm)
    gap = np.linalg.norm(lm[[37, 38, 43, 44]] - lm[[41, 40, 47, 46]], axis=-1).mean()
    eye_width = np.linalg.norm(lm[39] - lm[36])
    lids = lm[[37, 38, 43, 44, 40, 41, 46, 47]]
    lid_vectors = np.concatenate([np.tile(-0.6 * gap * up, (4, 1)),
                                  np.tile(0.15 * gap * up, (4, 1))])
    blink_frame = int(rng.integers(1, num_frames - 1))
    duration = rng.uniform(1.5, 2.5)
    t = np.arange(num_frames)
    blink = np.clip(1 - np.abs(t - blink_frame) / duration, 0, 1)
    centres = np.concatenate([centres, lids])
    vectors = np.concatenate([vectors, lid_vectors])
    sigmas = np.concatenate([sigmas, np.full(8, 0.3 * eye_width)])
    coeffs = np.concatenate([coeffs, np.repeat(blink[:, None], 8, axis=1)], axis=1)

  # Head drift: smooth random translation and roll about the face centre,
  # peak `drift_px` at the aligned scale.
  t = np.linspace(0, 1, num_frames)
  drift = np.zeros((num_frames, 3))
  for k in range(3):
    freq = rng.uniform(0.3, 1.5)
    drift[:, k] = np.sin(2 * np.pi * (freq * t + rng.random()))
    drift[:, k] -= drift[0, k]
  drift /= max(np.abs(drift).max(), 1e-6)
  peak_raw = config.drift_px / subject.scale
  centre = lm[[36, 45, 30, 48, 54]].mean(0)
  half_face = np.linalg.norm(lm[16] - lm[0]) / 2
  roll = drift[:, 2] * peak_raw / half_face  # radians; tip moves <= peak_raw.
  head = np.zeros((num_frames, 2, 3))
  head[:, 0, 1], head[:, 1, 0] = -roll, roll
  head[:, :, 2] = drift[:, :2] * peak_raw / np.sqrt(2)
  head[:, :, 2] -= np.einsum('tij,j->ti', head[:, :, :2], centre)
  info = {'action_units': aus, 'amplitude_px': float(amplitude),
          'onset': float(onset), 'apex': float(apex), 'offset': float(offset),
          'blink_frame': blink_frame}
  return Motion(centres, vectors, sigmas, coeffs, head), info


def write_video(subject: Subject, motion: Motion, folder: str, first_number: int,
                config: SyntheticConfig, rng: np.random.Generator,
                name: str = 'img{}.jpg') -> None:
  """Renders and writes the frames `name.format(first_number + t)`."""
  os.makedirs(folder, exist_ok=True)
  params = [cv2.IMWRITE_JPEG_QUALITY, config.jpeg_quality]
  basis = grid_basis(motion, *subject.image.shape[:2])
  for t in range(motion.num_frames):
    frame = render(subject.image, motion, t, basis)
    frame = frame * (1 + rng.normal(0, 0.005))  # Lighting flicker.
    frame = frame + config.noise_std * rng.standard_normal(frame.shape, np.float32)
    frame = np.clip(frame, 0, 255).round().astype(np.uint8)
    path = os.path.join(folder, name.format(first_number + t))
    if not cv2.imwrite(path, cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), params):
      raise OSError(f'Could not write {path}.')


def face_video(label: str = 'positive', num_frames: int = 48, *, subject: int = 0,
               seed: int = 0, frame_size: int = 256,
               amplitude_px: tuple[float, float] = (3.0, 4.0)
               ) -> tuple[np.ndarray, Motion, Subject, dict[str, object]]:
  """One video of a real face photograph with a micro-motion, as RGB frames.

  The astronaut photograph becomes subject `subject` of a set with this seed
  and frame size (`make_subject`), moved by one `make_motion` of class
  `label`, with the same flicker and sensor noise as the generated sets.

  Returns:
    (uint8 [num_frames, S, S, 3] RGB frames, the Motion, the Subject, the
    motion's info: action units, amplitude, onset/apex/offset frames).
  """
  config = SyntheticConfig(num_subjects=subject + 1, videos_per_class=1,
                           min_frames=max(8, num_frames), max_frames=max(8, num_frames),
                           amplitude_px=amplitude_px, frame_size=frame_size, seed=seed)
  person = make_subject(subject, config)
  rng = np.random.default_rng([seed, 3, subject, CLASSES.index(label)])
  motion, info = make_motion(person, label, num_frames, config, rng)
  basis = grid_basis(motion, *person.image.shape[:2])
  frames = []
  for t in range(motion.num_frames):
    frame = render(person.image, motion, t, basis)
    frame = frame * (1 + rng.normal(0, 0.005))  # Lighting flicker.
    frame = frame + config.noise_std * rng.standard_normal(frame.shape, np.float32)
    frames.append(np.clip(frame, 0, 255).round().astype(np.uint8))
  return np.stack(frames), motion, person, info


_FOURCC = {'.avi': 'MJPG', '.mp4': 'mp4v', '.m4v': 'mp4v', '.mov': 'mp4v', '.mkv': 'MJPG'}


def write_video_file(path: str, frames: np.ndarray, fps: float = 30.0) -> str:
  """Writes RGB uint8 frames [T, H, W, 3] as a video file with OpenCV.

  The codec follows the extension: Motion-JPEG for .avi / .mkv (always
  available in OpenCV), MPEG-4 part 2 for .mp4 / .m4v / .mov.

  Raises:
    ValueError: an unknown extension.
    OSError: OpenCV cannot write the file.
  """
  ext = os.path.splitext(path)[1].lower()
  if ext not in _FOURCC:
    raise ValueError(f'{path}: write .avi, .mkv, .mp4, .m4v or .mov.')
  frames = np.asarray(frames)
  height, width = frames.shape[1:3]
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*_FOURCC[ext]), float(fps),
                           (width, height))
  if not writer.isOpened():
    raise OSError(f'OpenCV cannot write {path} (codec {_FOURCC[ext]}).')
  try:
    for frame in frames:
      writer.write(cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2BGR))
  finally:
    writer.release()
  if not os.path.isfile(path) or os.path.getsize(path) == 0:
    raise OSError(f'OpenCV wrote nothing to {path}.')
  return path


def generate(out_dir: str, config: SyntheticConfig = SyntheticConfig(),
             overwrite: bool = False) -> str:
  """Writes a synthetic set (see the module docstring for the layout).

  Generation is atomic: frames are written into a temporary sibling folder
  that is renamed to `out_dir` only when complete. An existing complete set
  with the same config is reused unless `overwrite`.

  Returns:
    out_dir.
  """
  out_dir = os.path.abspath(out_dir)
  manifest_path = os.path.join(out_dir, MANIFEST)
  if os.path.exists(manifest_path) and not overwrite:
    with open(manifest_path) as f:
      if json.load(f)['config'] == _config_json(config):
        return out_dir
    raise FileExistsError(f'{out_dir} holds a synthetic set with another '
                          'config; pass overwrite=True or another folder.')
  if (os.path.isdir(out_dir) and os.listdir(out_dir) and not overwrite
      and not os.path.exists(manifest_path)):
    raise FileExistsError(f'{out_dir} exists and is not a synthetic set; '
                          'choose an empty or new folder, or pass '
                          'overwrite=True to replace it.')
  parent = os.path.dirname(out_dir)
  os.makedirs(parent, exist_ok=True)
  tmp = tempfile.mkdtemp(prefix='.synthetic_me.', dir=parent)
  try:
    videos = []
    for s in range(config.num_subjects):
      subject = make_subject(s, config)
      for c, label in enumerate(CLASSES):
        for v in range(config.videos_per_class):
          rng = np.random.default_rng([config.seed, 2, s, c, v])
          n = int(rng.integers(config.min_frames, config.max_frames + 1))
          motion, info = make_motion(subject, label, n, config, rng)
          # Videos are numbered so that the name does not reveal the class.
          video = f'{subject.name}_v{v * len(CLASSES) + c + 1:03d}'
          first = int(rng.integers(1, 200))
          write_video(subject, motion,
                      os.path.join(tmp, 'frames', label, video), first, config, rng)
          os.makedirs(os.path.join(tmp, 'truth'), exist_ok=True)
          motion.save(os.path.join(tmp, 'truth', video + '.npz'))
          videos.append({'video': video, 'subject': subject.name, 'label': label,
                         'num_frames': n, 'first_number': first,
                         'aligned_scale': subject.scale, **info})
    with open(os.path.join(tmp, MANIFEST), 'w') as f:
      json.dump({'config': _config_json(config), 'classes': list(CLASSES),
                 'videos': videos}, f, indent=1)
    if os.path.exists(out_dir):
      shutil.rmtree(out_dir)
    try:
      os.replace(tmp, out_dir)
    except OSError:
      # Another process finished the same set first: keep its copy if it is
      # complete and has this config.
      if not os.path.isfile(manifest_path):
        raise
      with open(manifest_path) as f:
        if json.load(f)['config'] != _config_json(config):
          raise
      shutil.rmtree(tmp, ignore_errors=True)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  return out_dir


def _config_json(config: SyntheticConfig) -> dict[str, object]:
  return json.loads(json.dumps(dataclasses.asdict(config)))


def load_manifest(out_dir: str) -> dict[str, object]:
  """The manifest of a generated set (raises if the set is incomplete)."""
  path = os.path.join(out_dir, MANIFEST)
  if not os.path.isfile(path):
    raise FileNotFoundError(f'{path} is missing: {out_dir} is not a complete '
                            'synthetic set; run mol_jax.data.synthetic.generate.')
  with open(path) as f:
    return json.load(f)


def stored_true_flow(motion: Motion, frame_indices: Sequence[int],
                     geometry: 'preprocess.ClipGeometry') -> np.ndarray:
  """Exact flow between consecutive stored (aligned, maybe registered) frames.

  Args:
    motion: the video's motion.
    frame_indices: [T] frames of the clip.
    geometry: the clip's raw -> stored map (`preprocess.ClipGeometry`).

  Returns:
    float32 [T - 1, size, size, 2], [..., 0] = x: where the content at each
    stored pixel of frame i is shown in frame i + 1, minus that pixel.
  """
  size = geometry.size
  grid = np.stack(np.meshgrid(np.arange(size), np.arange(size)), -1).astype(np.float64)
  flows = []
  for i in range(len(frame_indices) - 1):
    raw = geometry.grid_in_raw(i)
    moved = raw + true_flow(motion, frame_indices[i], frame_indices[i + 1], raw)
    flows.append(geometry.to_stored(moved, i + 1) - grid)
  return np.stack(flows).astype(np.float32)


def stored_true_landmarks(motion: Motion, frame_indices: Sequence[int], base: np.ndarray,
                          geometry: 'preprocess.ClipGeometry') -> np.ndarray:
  """float32 [T, 68, 2]: the subject's landmarks moved by the exact motion, in
  each stored frame (`base`: the still face's landmarks in the raw frame)."""
  return np.stack([geometry.to_stored(position_at(motion, int(t), base), k)
                   for k, t in enumerate(frame_indices)]).astype(np.float32)


# A stored pixel belongs to a clip's moving region where its action-unit
# displacement reaches this fraction of the clip's peak.
REGION_FRACTION = 0.2


def action_units_only(motion: Motion, action_units: Sequence[str],
                      landmarks: np.ndarray) -> Motion:
  """The part of `motion` its action units make: no blink, no head drift.

  `make_motion` puts the action units' anchors first, in the order of
  `action_units` (`landmarks`: the subject's, which place them).
  """
  n = sum(len(_action_unit(au, landmarks)[0]) for au in action_units)
  return Motion(motion.centers[:n], motion.vectors[:n], motion.sigmas[:n],
                motion.coeffs[:, :n], np.zeros_like(motion.head))


def stored_moving_region(au_motion: Motion, frame_indices: Sequence[int],
                         geometry: 'preprocess.ClipGeometry',
                         fraction: float = REGION_FRACTION) -> np.ndarray:
  """uint8 [size, size]: 1 where the clip's action units moved the face.

  A stored pixel is in the region where its action-unit displacement from
  the clip's first frame, at the frame of largest motion, is at least
  `fraction` of that peak over the whole frame; all 0 if the clip's frames
  miss the motion (peak under 0.05 raw pixels).
  """
  raw = geometry.grid_in_raw(0)
  start = au_motion.displacement(int(frame_indices[0]), raw)
  moved = np.stack([np.linalg.norm(au_motion.displacement(int(t), raw) - start, axis=-1)
                    for t in frame_indices[1:]])
  frame = int(np.argmax(moved.reshape(len(moved), -1).max(1)))
  peak = float(moved[frame].max())
  if peak < 0.05:
    return np.zeros(raw.shape[:2], np.uint8)
  return (moved[frame] >= fraction * peak).astype(np.uint8)


@functools.lru_cache(maxsize=4)
def _manifest_videos(raw_dir: str) -> tuple[dict[str, dict], tuple[str, ...]]:
  manifest = load_manifest(raw_dir)
  return ({v['video']: v for v in manifest['videos']},
          tuple(sorted({v['subject'] for v in manifest['videos']})))


@functools.lru_cache(maxsize=64)
def _subject_landmarks(index: int, config: SyntheticConfig) -> np.ndarray:
  return make_subject(index, config).landmarks


def clip_truth(raw_dir: str, config: SyntheticConfig, job, clip) -> dict[str, np.ndarray]:
  """The exact motion of one built clip, as features of its record.

  Runs beside the clip's pre-processing (`preprocess.ClipProcessor`'s
  `annotate`), where its alignment is known.

  Args:
    raw_dir: the generated set the clip comes from.
    config: its generator config.
    job: the `preprocess.ClipJob` (its frames lie in frames/<label>/<video>/).
    clip: the pre-processed `preprocess.Clip`, with its `geometry`.

  Returns:
    true_flow float16 [7, S, S, 2] and true_landmarks float32 [8, 68, 2], in
    stored-frame pixels like the records' TV-L1 flow and dlib landmarks, and
    moving_region uint8 [S, S] (`stored_moving_region`).
  """
  video_id = os.path.basename(os.path.dirname(job.paths[0]))
  videos, subjects = _manifest_videos(raw_dir)
  motion = Motion.load(os.path.join(raw_dir, 'truth', video_id + '.npz'))
  base = _subject_landmarks(subjects.index(videos[video_id]['subject']), config)
  indices = [int(i) for i in clip.frame_indices]
  au_motion = action_units_only(motion, videos[video_id]['action_units'], base)
  return {'true_flow': stored_true_flow(motion, indices, clip.geometry).astype(np.float16),
          'true_landmarks': stored_true_landmarks(motion, indices, base, clip.geometry),
          'moving_region': stored_moving_region(au_motion, indices, clip.geometry)}


def main(argv: Sequence[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('out_dir', nargs='?',
                      help='where to generate a synthetic set (not with --write_video)')
  parser.add_argument('--subjects', type=int, default=SyntheticConfig.num_subjects)
  parser.add_argument('--videos_per_class', type=int,
                      default=SyntheticConfig.videos_per_class)
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--overwrite', action='store_true')
  parser.add_argument('--write_video', metavar='FILE',
                      help='instead, write one video file (.avi, .mp4, ...) of the real '
                      'face photograph with a micro-motion (face_video)')
  parser.add_argument('--label', default='positive', choices=CLASSES,
                      help='class of the --write_video motion')
  parser.add_argument('--frames', type=int, default=48, help='--write_video length')
  parser.add_argument('--fps', type=float, default=30.0, help='--write_video frame rate')
  parser.add_argument('--size', type=int, default=256, help='--write_video frame side')
  args = parser.parse_args(argv)
  if args.write_video:
    frames, _, _, info = face_video(args.label, args.frames, seed=args.seed,
                                    frame_size=args.size)
    print(write_video_file(args.write_video, frames, args.fps), info)
    return
  if not args.out_dir:
    parser.error('give OUT_DIR (a set) or --write_video FILE (one video)')
  config = SyntheticConfig(num_subjects=args.subjects,
                           videos_per_class=args.videos_per_class, seed=args.seed)
  print(generate(args.out_dir, config, overwrite=args.overwrite))


if __name__ == '__main__':
  main()
