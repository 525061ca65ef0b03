"""Grain input pipeline over the micro-expression TFDS datasets.

Public API:

* `create_datasets(dataset, data_dir, test_subjects, ...) -> Datasets`: a
  fold's training stream and evaluation batches. `dataset` is a TFDS name
  with config, e.g. 'synthetic_me/default' or 'casme2/5class', or a
  comma-separated list of them read as one collection (`mol_jax.data.sources`);
  the subjects not in `test_subjects` train, or `train_subjects` if given.
* `list_subjects(dataset, data_dir)`: the subjects (= splits) of a built set
  (`<alias>_<subject>` in a collection).
* `class_names(dataset, data_dir)`: label names in label order.
* `subject_statistics(dataset, data_dir, subjects)`: normalisation constants.

`python -m mol_jax.tools.input_benchmark` times it.

Batches are dicts of numpy arrays holding this process's share of the
global batch (global // jax.process_count(); examples are sharded by
jax.process_index()):

  video      float32 [B, 8, 128, 128, 1]  normalised frames
  flow       float32 [B, 7, 128, 128, 2]  TV-L1 flow of pair (i, i+1), [..., 0] = x
  landmarks  float32 [B, 7, 68, 2]        (x, y) of frames 1..7 (the second
                                          frame of each pair), crop pixels
  label      int32   [B]
  mask       float32 [B]                  1 = real example, 0 = padding
  true_flow, true_landmarks  (evaluation, and training with `train_truth`;
                                          synthetic_me) the exact motion,
                                          shaped as flow and landmarks
  video_id   list[str] (evaluation only)  for per-video pooling
  video_index int32  [B] (evaluation only)  position of video_id in
                                          `EvalDataset.video_ids`; -1 = padding

Training: infinite, reshuffled every epoch, deterministic given the seed, a
random 128x128 crop at offsets (dy, dx) in [0, 16]^2 (official; narrowed
around the centre by `crop_jitter`, optionally zoomed by `scale`; flow and
landmarks follow the crop), then optional augmentation (`augment_example`: a
left-right flip with its targets mirrored, a per-clip gain and offset).
Evaluation: finite, every example exactly once, centre crop at (8, 8), fixed
batch size, the last batch padded with mask 0; every process yields the same
number of batches.

Normalisation (official): after a subject's samples are built, the official
code subtracts their global mean and divides by the global maximum of the
result. Here, for each subject, over every pixel of all 8 frames of all its
clips in the built dataset, taken inside the centre 128x128 crop (exactly the
official test-time samples; the official training samples use their random
crops instead, a difference of a fraction of a gray level):

  mean_s = mean(x),  scale_s = max(x) - mean_s,  video = (x - mean_s) / scale_s.

Each subject is normalised with its own statistics, train and test alike.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
from typing import Any, Iterator, Sequence

import cv2
import grain
import jax
import numpy as np
from absl import flags

from mol_jax import clip_format
from mol_jax.data import sources
# Reading built sets (one, or several as one collection), part of this API.
from mol_jax.data.sources import TRUTH_KEYS, built_dir, class_names, has_truth, list_subjects  # pylint: disable=g-multiple-import,unused-import


@functools.lru_cache(maxsize=256)
def _subject_statistics(dataset: str, data_dir: str | None, subject: str,
                        crop_size: int) -> tuple[float, float]:
  source = sources.source(dataset, data_dir, [subject])
  lo = (clip_format.STORED_SIZE - crop_size) // 2
  total, count, peak = 0.0, 0, 0
  for i in range(len(source)):
    video = source[i]['video'][:, lo:lo + crop_size, lo:lo + crop_size]
    total += float(video.sum(dtype=np.float64))
    count += video.size
    peak = max(peak, int(video.max()))
  mean = total / count
  scale = peak - mean
  if scale <= 0:
    raise ValueError(f'{dataset}/{subject}: every pixel has the same value; '
                     'the clips cannot be normalised.')
  return mean, scale


def subject_statistics(dataset: str, data_dir: str | None,
                       subjects: Sequence[str], crop_size: int = clip_format.CROP_SIZE
                       ) -> dict[str, tuple[float, float]]:
  """{subject: (mean, scale)} with video = (x - mean) / scale (see module doc)."""
  return {s: _subject_statistics(dataset, data_dir, s, crop_size)
          for s in subjects}


def training_crop_offsets(crop_size: int, crop_jitter: int | None, scale: float
                          ) -> tuple[int, int]:
  """(low, high) offsets of training crops; checks `crop_jitter` and `scale`.

  Raises:
    ValueError: naming the bad argument and its valid range.
  """
  max_offset = clip_format.STORED_SIZE - crop_size
  if max_offset < 0:
    raise ValueError(f'crop_size {crop_size} > stored size {clip_format.STORED_SIZE}.')
  centre = max_offset // 2
  if crop_jitter is not None and not 0 <= crop_jitter <= centre:
    raise ValueError(f'crop_jitter must be 0..{centre} pixels, got {crop_jitter}')
  if not 0 <= scale < 1:
    raise ValueError(f'scale must be in [0, 1), got {scale}')
  if crop_jitter is None:
    return 0, max_offset
  return centre - crop_jitter, centre + crop_jitter


def _text(value: Any) -> str:
  return value.decode() if isinstance(value, bytes) else str(value)


def crop_example(example: dict[str, Any], dy: int, dx: int,
                 stats: dict[str, tuple[float, float]],
                 crop_size: int = clip_format.CROP_SIZE, side: int | None = None,
                 with_truth: bool = False) -> dict[str, Any]:
  """Crops a stored clip at (dy, dx), normalises it, picks the model targets.

  Args:
    example: a record (video [8, 144, 144, 1] uint8, flow [7, 144, 144, 2],
      landmarks [8, 68, 2], label, subject, video_id).
    dy, dx: crop offsets.
    stats: {subject: (mean, scale)}.
    crop_size: output side.
    side: side of the window cut at (dy, dx), resized (bilinear) to
      crop_size; flow vectors and landmarks are scaled with it. None or
      crop_size: a plain crop.
    with_truth: also crop the exact motion of a synthetic record
      (`true_flow`, `true_landmarks`, when the record has them); evaluation
      scores against it, training never sees it.

  Returns:
    video float32 [8, c, c, 1], flow float32 [7, c, c, 2], landmarks float32
    [7, 68, 2] (frames 1..7, shifted by the offsets), label int32, mask 1.0,
    video_id str.
  """
  mean, scale = stats[_text(example['subject'])]
  side = crop_size if side is None else side
  height, width = example['video'].shape[1:3]
  if not (0 <= dy <= height - side and 0 <= dx <= width - side):
    raise ValueError(f'crop window {side}x{side} at (dy, dx) = ({dy}, {dx}) lies outside the '
                     f'stored {height}x{width} frames of {_text(example["video_id"])}.')
  window = (slice(None), slice(dy, dy + side), slice(dx, dx + side))
  video = example['video'][window].astype(np.float32)
  motion = {'flow': example['flow'], 'landmarks': example['landmarks']}
  if with_truth and TRUTH_KEYS[0] in example:
    motion.update(true_flow=example['true_flow'], true_landmarks=example['true_landmarks'])
  out = {}
  for key, value in motion.items():
    if key.endswith('flow'):
      flow = value[window].astype(np.float32)
      out[key] = flow if side == crop_size else _resize_frames(flow, crop_size) * (crop_size / side)
    else:
      points = value[1:] - np.array([dx, dy], np.float32)
      if side != crop_size:
        # Pixel centres: x_out + 0.5 = (x_in + 0.5) * factor, as cv2.resize samples.
        points = (points + 0.5) * (crop_size / side) - 0.5
      out[key] = points.astype(np.float32)
  if side != crop_size:
    video = _resize_frames(video, crop_size)
  return {
      'video': (video - mean) / scale,
      **out,
      'label': np.int32(example['label']),
      'mask': np.float32(1.0),
      'video_id': _text(example['video_id']),
  }


def eval_example(example: dict[str, Any], stats: dict[str, tuple[float, float]],
                 crop_size: int = clip_format.CROP_SIZE) -> dict[str, Any]:
  """A stored clip as evaluation sees it: the centred crop, normalised (`crop_example`)."""
  centre = (clip_format.STORED_SIZE - crop_size) // 2
  return crop_example(example, centre, centre, stats, crop_size, with_truth=True)


def evaluation_clips(dataset: str, data_dir: str | None, subjects: Sequence[str], *,
                     max_clips_per_subject: int | None = None
                     ) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
  """Every stored clip of `subjects` as evaluation sees it, in split order.

  Yields:
    (record, clip): `record` the stored example (video [8, 144, 144, 1]
    uint8, flow [7, 144, 144, 2], landmarks [8, 68, 2], frame_indices [8],
    label, and `subject` and `video_id` as str); `clip` the same example
    centre-cropped and normalised with its subject's statistics
    (`eval_example`).
  """
  stats = subject_statistics(dataset, data_dir, subjects)
  for subject in subjects:
    source = sources.source(dataset, data_dir, [subject])
    count = len(source)
    if max_clips_per_subject is not None:
      count = min(count, max_clips_per_subject)
    for i in range(count):
      record = dict(source[i])
      record['subject'] = _text(record['subject'])
      record['video_id'] = _text(record['video_id'])
      yield record, eval_example(record, stats)


def _resize_frames(frames: np.ndarray, size: int) -> np.ndarray:
  """[T, h, w, C] float32 -> [T, size, size, C], bilinear, frames as channels."""
  t, h, w, c = frames.shape
  stacked = frames.transpose(1, 2, 0, 3).reshape(h, w, t * c)
  resized = cv2.resize(stacked, (size, size), interpolation=cv2.INTER_LINEAR)
  return resized.reshape(size, size, t, c).transpose(2, 0, 1, 3)


# iBUG 68-point index of each point's mirror image (left and right swap).
MIRRORED_LANDMARKS = np.array(
    list(range(16, -1, -1))                               # jaw
    + list(range(26, 21, -1)) + list(range(21, 16, -1))   # brows
    + [27, 28, 29, 30] + list(range(35, 30, -1))          # nose
    + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]    # eyes
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]    # outer lips
    + [64, 63, 62, 61, 60, 67, 66, 65])                   # inner lips


def flip_example(example: dict[str, Any]) -> dict[str, Any]:
  """Mirrors a cropped example left-right, targets included.

  The flow's x component changes sign and every landmark takes its mirror
  point's place (the left eye becomes the right one), so the targets stay
  what the flipped video shows; the exact motion too, when the example has it.
  """
  width = example['video'].shape[2]
  out = dict(example, video=np.ascontiguousarray(example['video'][:, :, ::-1]))
  for prefix in ('', 'true_'):
    if f'{prefix}flow' not in example:
      continue
    landmarks = example[f'{prefix}landmarks'][:, MIRRORED_LANDMARKS]
    landmarks = np.stack([width - 1 - landmarks[..., 0], landmarks[..., 1]], -1)
    flow = example[f'{prefix}flow'][:, :, ::-1] * np.array([-1.0, 1.0], np.float32)
    out[f'{prefix}flow'] = np.ascontiguousarray(flow, dtype=np.float32)
    out[f'{prefix}landmarks'] = landmarks.astype(np.float32)
  return out


def augment_example(example: dict[str, Any], rng: np.random.Generator, *,
                    flip: bool, intensity: float) -> dict[str, Any]:
  """Training augmentation that keeps the clip's motion and label.

  Args:
    example: the output of `crop_example`.
    rng: per-example generator.
    flip: mirror left-right with probability 1/2.
    intensity: one gain in [1 - a, 1 + a] and one offset in [-a, a]
      (normalised units) for all 8 frames, so a clip's overall brightness
      and contrast stop identifying it while frame-to-frame change survives.
  """
  if flip and rng.random() < 0.5:
    example = flip_example(example)
  if intensity > 0:
    gain, offset = 1.0 + rng.uniform(-intensity, intensity), rng.uniform(-intensity, intensity)
    example = dict(example, video=(example['video'] * gain + offset).astype(np.float32))
  return example


def _padding(crop_size: int, with_truth: bool) -> dict[str, Any]:
  flow = np.zeros((clip_format.NUM_PAIRS, crop_size, crop_size, 2), np.float32)
  points = np.zeros((clip_format.NUM_PAIRS, clip_format.NUM_LANDMARKS, 2), np.float32)
  out = {'video': np.zeros((clip_format.NUM_FRAMES, crop_size, crop_size, 1), np.float32),
         'flow': flow, 'landmarks': points, 'label': np.int32(0), 'mask': np.float32(0.0),
         'video_id': ''}
  if with_truth:
    out.update(true_flow=flow, true_landmarks=points)
  return out


def mean_landmarks(dataset: str, data_dir: str | None, subjects: Sequence[str],
                   crop_size: int = clip_format.CROP_SIZE) -> np.ndarray:
  """float32 [7, 68, 2]: the mean landmark target of frames 1..7 over the
  subjects' clips, in the centred crop's pixels: the fixed mean-shape
  predictor the landmark head is compared with."""
  offset = (clip_format.STORED_SIZE - crop_size) // 2
  source = sources.source(dataset, data_dir, subjects)
  total = np.zeros((clip_format.NUM_PAIRS, clip_format.NUM_LANDMARKS, 2), np.float64)
  for i in range(len(source)):
    total += source[i]['landmarks'][1:]
  return (total / max(len(source), 1) - offset).astype(np.float32)


def _process_share(global_batch: int, process_index: int | None,
                   process_count: int | None) -> tuple[int, int, int]:
  if process_index is None or process_count is None:
    process_index, process_count = jax.process_index(), jax.process_count()
  if global_batch % process_count:
    raise ValueError(f'Global batch {global_batch} is not divisible by '
                     f'{process_count} processes.')
  return global_batch // process_count, process_index, process_count


def _batch_fn(examples: Sequence[dict[str, Any]]) -> dict[str, Any]:
  batch = {k: np.stack([e[k] for e in examples]) for k in examples[0]
           if k != 'video_id'}
  batch['video_id'] = [e['video_id'] for e in examples]
  return batch


def _train_batch_fn(examples: Sequence[dict[str, Any]]) -> dict[str, Any]:
  return {k: np.stack([e[k] for e in examples]) for k in examples[0]
          if k != 'video_id'}


class EvalDataset:
  """Finite, re-iterable evaluation batches (see the module docstring).

  Attributes:
    num_examples: examples of the held-out subjects (all processes).
    num_batches: batches every process yields.
    video_ids: the held-out videos, sorted; a batch's `video_index` points
      here, so that every process can pool clips by video.
  """

  def __init__(self, dataset, num_examples: int, num_batches: int,
               read_options, video_ids: Sequence[str] = ()):
    self._dataset = dataset
    self.num_examples = num_examples
    self.num_batches = num_batches
    self.video_ids = list(video_ids)
    self._read_options = read_options

  def __len__(self) -> int:
    return self.num_batches

  def __iter__(self) -> Iterator[dict[str, Any]]:
    return iter(self._dataset.to_iter_dataset(self._read_options))


@dataclasses.dataclass
class Datasets:
  """What `create_datasets` returns.

  Attributes:
    train: infinite iterator of training batches (None if no train subject).
    eval: `EvalDataset` over the test subjects (None if none).
    train_subjects, test_subjects: the fold.
    class_names: label names.
    num_train_examples: training clips (all processes).
    statistics: {subject: (mean, scale)} used for normalisation.
    mean_landmarks: [7, 68, 2] mean landmark target of the training clips
      (`mean_landmarks`); None without training subjects.
  """
  train: Iterator[dict[str, np.ndarray]] | None
  eval: EvalDataset | None
  train_subjects: list[str]
  test_subjects: list[str]
  class_names: list[str]
  num_train_examples: int
  statistics: dict[str, tuple[float, float]]
  mean_landmarks: np.ndarray | None = None


def create_datasets(dataset: str, data_dir: str | None,
                    test_subjects: Sequence[str], *, batch_size: int,
                    eval_batch_size: int | None = None, seed: int = 0,
                    train_subjects: Sequence[str] | None = None,
                    crop_size: int = clip_format.CROP_SIZE, grain_workers: int = 0,
                    read_threads: int = 2, flip: bool = False,
                    intensity: float = 0.0,
                    crop_jitter: int | None = None, scale: float = 0.0,
                    train_truth: bool = False,
                    process_index: int | None = None,
                    process_count: int | None = None) -> Datasets:
  """Training and evaluation pipelines for one LOSO fold.

  Args:
    dataset: TFDS name with config, e.g. 'synthetic_me/default'.
    data_dir: TFDS data dir holding the built dataset.
    test_subjects: held-out subjects (splits).
    batch_size: global training batch size.
    eval_batch_size: global evaluation batch size (default batch_size).
    seed: shuffling and cropping seed.
    train_subjects: training subjects (default: every other subject).
    crop_size: crop side (128).
    grain_workers: grain worker processes for training (0: threads only).
    read_threads: grain reading threads.
    flip, intensity: training augmentation (see `augment_example`); off by
      default, as in the official code.
    crop_jitter: training crops are drawn within this many pixels of the
      centred evaluation crop, per axis; None = the whole stored frame
      (offsets 0..16 for 128 of 144, +-8 px: the official augmentation).
    scale: training crops are zoomed by a factor drawn in [1 - a, 1 + a]:
      a window of side crop_size / factor (at most the stored 144), centred
      where the unzoomed crop would be, resized to crop_size. 0 = off.
    train_truth: training batches also carry the exact motion (`true_flow`,
      `true_landmarks`; synthetic_me), cropped and augmented with the rest,
      for a flow term trained against it (`config.loss.flow_target`).
    process_index, process_count: default jax.process_index()/count().

  Returns:
    `Datasets`.
  """
  training_crop_offsets(crop_size, crop_jitter, scale)  # Checks them before any reading.
  subjects = list_subjects(dataset, data_dir)
  test_subjects = list(test_subjects)
  if train_subjects is None:
    train_subjects = [s for s in subjects if s not in test_subjects]
  train_subjects = list(train_subjects)
  overlap = set(train_subjects) & set(test_subjects)
  if overlap:
    raise ValueError(f'Subjects {sorted(overlap)} are in both train and test.')
  stats = subject_statistics(dataset, data_dir, train_subjects + test_subjects,
                             crop_size)
  read_options = grain.ReadOptions(num_threads=read_threads,
                                   prefetch_buffer_size=4)
  train, num_train = None, 0
  if train_subjects:
    train, num_train = training_batches(
        dataset, data_dir, train_subjects, stats, batch_size=batch_size, seed=seed,
        crop_size=crop_size, grain_workers=grain_workers, read_options=read_options,
        flip=flip, intensity=intensity, crop_jitter=crop_jitter,
        scale=scale, with_truth=train_truth, process_index=process_index,
        process_count=process_count)
  evaluation = None
  if test_subjects:
    evaluation = evaluation_batches(
        dataset, data_dir, test_subjects, stats, batch_size=eval_batch_size or batch_size,
        crop_size=crop_size, read_options=read_options, process_index=process_index,
        process_count=process_count)
  return Datasets(train=train, eval=evaluation, train_subjects=train_subjects,
                  test_subjects=test_subjects,
                  class_names=class_names(dataset, data_dir),
                  num_train_examples=num_train, statistics=stats,
                  mean_landmarks=(mean_landmarks(dataset, data_dir, train_subjects, crop_size)
                                  if train_subjects else None))


def training_batches(dataset: str, data_dir: str | None, train_subjects: Sequence[str],
                     stats: dict[str, tuple[float, float]], *, batch_size: int, seed: int,
                     crop_size: int, grain_workers: int, read_options, flip: bool,
                     intensity: float, crop_jitter: int | None, scale: float,
                     process_index: int | None, process_count: int | None,
                     with_truth: bool = False
                     ) -> tuple[Iterator[dict[str, np.ndarray]], int]:
  """(infinite iterator of this process's training batches, number of training clips).

  The arguments are `create_datasets`'s (`with_truth` is its `train_truth`);
  `stats` the subjects' normalisation.
  """
  low, high = training_crop_offsets(crop_size, crop_jitter, scale)
  local_batch, index, count = _process_share(batch_size, process_index, process_count)
  source = sources.source(dataset, data_dir, train_subjects)
  num_train = len(source)
  if num_train < count:
    raise ValueError(f'{num_train} training examples cannot feed {count} processes.')

  def random_crop(example, rng: np.random.Generator):
    offsets = rng.integers(low, high + 1, size=2)
    side = crop_size
    if scale:
      side = min(clip_format.STORED_SIZE,
                 int(round(crop_size / rng.uniform(1 - scale, 1 + scale))))
    # A zoomed window keeps the unzoomed crop's centre, inside the frame.
    dy, dx = (int(np.clip(round(d + (crop_size - side) / 2), 0, clip_format.STORED_SIZE - side))
              for d in offsets)
    cropped = crop_example(example, dy, dx, stats, crop_size, side, with_truth=with_truth)
    return augment_example(cropped, rng, flip=flip, intensity=intensity)

  # Shuffle (every epoch a random permutation, as the official code),
  # repeat and crop one global stream. Process p then reads rows
  # [p * local, (p + 1) * local) of every global batch, the rows its devices
  # hold in jax.make_array_from_process_local_data, so global batch j is the
  # same array (examples, crops and order) for any process count.
  examples = grain.MapDataset.source(source).shuffle(seed=seed).repeat(None)
  global_stream = examples.random_map(random_crop, seed=seed + 1)

  def fetch_local(i):
    return global_stream[(i // local_batch) * batch_size + index * local_batch + i % local_batch]

  ds = (grain.MapDataset.range(sys.maxsize).map(fetch_local)
        .batch(local_batch, drop_remainder=True, batch_fn=_train_batch_fn))
  ds = ds.to_iter_dataset(read_options)
  if grain_workers > 0:
    # Grain's worker processes read absl flags; outside absl.app they are
    # not parsed yet.
    if not flags.FLAGS.is_parsed():
      flags.FLAGS.mark_as_parsed()
    ds = ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=grain_workers))
  return iter(ds), num_train


def evaluation_batches(dataset: str, data_dir: str | None, test_subjects: Sequence[str],
                       stats: dict[str, tuple[float, float]], *, batch_size: int,
                       crop_size: int, read_options, process_index: int | None,
                       process_count: int | None) -> 'EvalDataset':
  """The held-out subjects' clips, each exactly once, in padded fixed-size batches."""
  local_batch, index, count = _process_share(batch_size, process_index, process_count)
  source = sources.source(dataset, data_dir, test_subjects)
  n = len(source)
  per_process = -(-n // count)
  num_batches = max(1, -(-per_process // local_batch))

  video_ids = sorted({_text(source[i]['video_id']) for i in range(n)})
  position = {v: i for i, v in enumerate(video_ids)}
  truth = has_truth(dataset, data_dir)

  def fetch(i):
    global_index = index + i * count
    if global_index >= n:
      return dict(_padding(crop_size, truth), video_index=np.int32(-1))
    example = eval_example(source[global_index], stats, crop_size)
    example['video_index'] = np.int32(position[example['video_id']])
    return example

  ds = (grain.MapDataset.range(num_batches * local_batch).map(fetch)
        .batch(local_batch, batch_fn=_batch_fn))
  return EvalDataset(ds, n, num_batches, read_options, video_ids)
