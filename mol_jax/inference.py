"""Run a MOL model on clips or videos: one jitted evaluation function, numpy in and out.

`Predictor.predict` runs pre-processed clips; `Predictor.predict_video` runs a
video file or a folder of frames through the dataset builders'
pre-processing first (`mol_jax.video.prepare_video`) and returns a
`VideoPrediction`, whose `to_json` is the schema of predictions.json.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from mol_jax import checkpointing
from mol_jax import clip_format
from mol_jax import metrics
from mol_jax import video as video_lib
from mol_jax.data import faces
from mol_jax.model import MOL


@jax.jit
def _forward(graphdef: nnx.GraphDef, state: nnx.State, video: jax.Array) -> dict:
  return nnx.merge(graphdef, state)(video, train=False)


class Predictor:
  """Evaluation-mode MOL with a numpy interface.

  `predict(video)` takes [batch, 8, 128, 128, 1] (or one clip without the
  batch axis, or without the channel axis) normalised float frames and
  returns numpy `logits` [batch, C], `flow` [batch, 7, 128, 128, 2] and
  `landmarks` [batch, 7, 68, 2].
  """

  def __init__(self, model: MOL, class_names: Sequence[str] | None = None,
               metadata: Mapping[str, Any] | None = None, source: str = ''):
    """Wraps `model`.

    Args:
      model: the network.
      class_names: label names in label order (default `class_0`, ...).
      metadata: what is known about the training run (`dataset`,
        `class_names`, `class_names_source`, ...), reported with predictions.
      source: the checkpoint or weight file, reported with predictions.
    """
    self.model = model
    self.num_classes = model.num_classes
    self.neighbor_num = model.neighbor_num
    self.metadata = dict(metadata or {})
    if class_names is None:
      class_names = generic_class_names(self.num_classes)
      self.metadata.setdefault('class_names_source', 'generic')
    if len(class_names) != self.num_classes:
      raise ValueError(f'{len(class_names)} class names {list(class_names)} for a model '
                       f'with {self.num_classes} classes')
    self.class_names = [str(c) for c in class_names]
    self.source = source
    self._graphdef, self._state = nnx.split(model)

  def predict(self, video: np.ndarray) -> dict[str, np.ndarray]:
    video = np.asarray(video, np.float32)
    single = video.ndim in (3, 4) and video.shape[0] == clip_format.NUM_FRAMES
    if single:
      video = video[None]
    if video.ndim == 4:
      video = video[..., None]
    expected = (clip_format.NUM_FRAMES, clip_format.CROP_SIZE, clip_format.CROP_SIZE, 1)
    if video.ndim != 5 or video.shape[1:] != expected:
      raise ValueError(f'video must be [batch, {clip_format.NUM_FRAMES}, {clip_format.CROP_SIZE}, {clip_format.CROP_SIZE}, 1] '
                       f'(or one clip without batch), got {np.shape(video)}')
    out = jax.device_get(_forward(self._graphdef, self._state, jnp.asarray(video)))
    out = {k: np.asarray(v) for k, v in out.items()}
    return {k: v[0] for k, v in out.items()} if single else out

  def predict_batched(self, video: np.ndarray, batch_size: int = 8) -> dict[str, np.ndarray]:
    """`predict` on [n, 8, 128, 128, 1] clips, at most `batch_size` per call.

    Calls are padded to a power of two (at most `batch_size`), so a video of
    any length compiles the network for a few batch shapes only.
    """
    video = np.asarray(video, np.float32)
    outputs, start = [], 0
    while start < len(video):
      chunk = video[start:start + batch_size]
      bucket = min(batch_size, 1 << (len(chunk) - 1).bit_length())
      padded = np.concatenate([chunk, np.zeros((bucket - len(chunk),) + chunk.shape[1:],
                                               np.float32)])
      out = self.predict(padded)
      outputs.append({k: v[:len(chunk)] for k, v in out.items()})
      start += len(chunk)
    return {k: np.concatenate([o[k] for o in outputs]) for k in outputs[0]}

  def predict_video(self, path: str, *, window: int = 0, hop: int | None = None,
                    max_clips: int | None = 8, align: str | None = None, upsample: int = 1,
                    max_frames: int | None = None, batch_size: int = 8, tvl1: bool = False,
                    detector: faces.FaceDetector | None = None,
                    progress: bool = False) -> 'VideoPrediction':
    """Pre-processes a video file or frame folder and runs the model on its clips.

    Args:
      path: video file or folder of frames.
      window, hop, max_clips: clip sampling (`mol_jax.video`, step 2).
      align: 'per_frame', 'per_clip' or 'registered'; default (None): the
        model's own alignment (`model_alignment`), the only one it was
        trained for. Another one is used, warned about in the prediction's
        `warnings` and recorded in its `alignment`.
      upsample: HOG detector upsampling (builders: 1).
      max_frames: read at most this many frames (None: all).
      batch_size: clips per model call.
      tvl1: also compute the Dual TV-L1 flow (the training target) of every
        clip, to show beside MOL's flow (about 1 s per clip on a CPU core).
      detector: reuse a loaded detector.
      progress: progress bars.

    Raises:
      mol_jax.video.VideoError: unreadable input, no face, too few frames,
        every clip skipped (each with its own `exit_code`).
    """
    model_align, model_source = self.model_alignment()
    used = align or model_align
    prepared = video_lib.prepare_video(path, window=window, hop=hop, max_clips=max_clips,
                                       align=used, upsample=upsample, max_frames=max_frames,
                                       detector=detector, progress=progress)
    out = self.predict_batched(prepared.model_input(), batch_size)
    alignment = {'used': used, 'model': model_align, 'model_source': model_source,
                 'overridden': used != model_align}
    return VideoPrediction(prepared, list(self.class_names), out['logits'],
                           metrics.softmax(out['logits']), out['flow'], out['landmarks'],
                           video_lib.tvl1_flows(prepared) if tvl1 else None,
                           self.source, dict(self.metadata), alignment)

  def model_alignment(self) -> tuple[str, str]:
    """(alignment, where it comes from) of the clips the model was trained on.

    First found: `alignment` in the checkpoint's metadata (training stores
    it); the builder config of the `dataset` it names; 'per_frame', the
    official alignment (official weights, or nothing known).
    """
    if self.metadata.get('alignment'):
      return str(self.metadata['alignment']), 'checkpoint metadata'
    dataset = str(self.metadata.get('dataset', ''))
    if dataset:
      # Checkpoints older than the `alignment` metadata only: imported here,
      # so that `import mol_jax` does not import TensorFlow Datasets.
      from mol_jax.data import builder  # pylint: disable=import-outside-toplevel
      return builder.dataset_alignment(dataset), f'dataset {dataset}'
    return 'per_frame', 'official alignment (no training set known)'


@dataclasses.dataclass
class VideoPrediction:
  """What MOL saw in a video.

  Attributes:
    prepared: the pre-processed clips.
    class_names: label names.
    logits: float32 [c, C] per clip.
    probabilities: float64 [c, C] softmax per clip.
    flow: float32 [c, 7, 128, 128, 2] predicted flow of pair (i, i+1), crop pixels.
    landmarks: float32 [c, 7, 68, 2] predicted landmarks of frames 1..7, crop pixels.
    tvl1: float32 [c, 7, 128, 128, 2] Dual TV-L1 flow (the training target)
      when asked for, else None.
    checkpoint: where the weights came from.
    metadata: what is known of the training run.
    alignment: {'used', 'model', 'model_source', 'overridden'}: the alignment
      of the clips and the one the model was trained with.
  """
  prepared: video_lib.PreparedVideo
  class_names: list[str]
  logits: np.ndarray
  probabilities: np.ndarray
  flow: np.ndarray
  landmarks: np.ndarray
  tvl1: np.ndarray | None = None
  checkpoint: str = ''
  metadata: dict[str, Any] = dataclasses.field(default_factory=dict)
  alignment: dict[str, Any] = dataclasses.field(default_factory=dict)

  @property
  def still_clips(self) -> np.ndarray:
    """bool [c]: clips without motion, whose probabilities mean nothing."""
    return self.prepared.still

  @property
  def still(self) -> bool:
    """True when every clip is still: the video's label means nothing."""
    return bool(self.still_clips.all())

  @property
  def pooled_clips(self) -> np.ndarray:
    """Indices of the clips pooled into the video's probabilities: the
    moving ones, or all when every clip is still."""
    moving = np.flatnonzero(~self.still_clips)
    return moving if len(moving) else np.arange(len(self.probabilities))

  @property
  def video_probabilities(self) -> np.ndarray:
    """[C]: mean of the probabilities of the `pooled_clips`."""
    return self.probabilities[self.pooled_clips].mean(axis=0)

  @property
  def warnings(self) -> list[str]:
    """One line each (no traceback, no command-line flags): clips skipped,
    frames that could not be decoded, still clips, another alignment than
    the model's. `mol_jax.predict` prints them as `warning: ...`."""
    p = self.prepared
    lines = []
    if self.alignment.get('overridden'):
      lines.append(f"{p.path}: alignment {self.alignment['used']!r} instead of the model's "
                   f"{self.alignment['model']!r} ({self.alignment['model_source']}): the model "
                   'was not trained on clips aligned this way, its probabilities may be off')
    track = p.track
    if track.unreadable:
      lines.append(f'{p.path}: {len(track.unreadable)} of {track.num_frames} frames could not '
                   'be decoded (a damaged or cut-short file?); they count as unreadable')
    for skipped in p.skipped_clips:
      lines.append(f"{p.path}: clip of frames {skipped['frames']} skipped: {skipped['reason']}")
    for i in np.flatnonzero(self.still_clips):
      lines.append(f'{p.path}: clip {i} (frames {p.frame_indices[i].tolist()}) is still '
                   f'(motion {float(p.motion[i]):.2f} < {video_lib.STILL_MOTION} gray levels): '
                   'its class probabilities are not meaningful'
                   + ('' if self.still else ' and are left out of the video\'s'))
    return lines

  @property
  def label(self) -> str:
    return self.class_names[int(np.argmax(self.video_probabilities))]

  def clip_label(self, i: int) -> str:
    return self.class_names[int(np.argmax(self.probabilities[i]))]

  def to_json(self) -> dict[str, Any]:
    """The content of predictions.json (docs/INFERENCE.md)."""
    p = self.prepared
    fps = p.fps

    def probs(row):
      return {c: round(float(v), 6) for c, v in zip(self.class_names, row)}

    clips = []
    still = self.still_clips
    for i, row in enumerate(p.frame_indices):
      clip = {'clip': i, 'frame_indices': [int(f) for f in row],
              'label': self.clip_label(i), 'probabilities': probs(self.probabilities[i]),
              'motion': round(float(p.motion[i]), 3) if p.motion is not None else None,
              'still': bool(still[i]), 'probabilities_meaningful': not bool(still[i])}
      if fps:
        clip['seconds'] = [round(int(row[0]) / fps, 3), round(int(row[-1]) / fps, 3)]
      clips.append(clip)
    track = p.track
    return {
        'input': p.path,
        'input_kind': p.kind,
        'checkpoint': self.checkpoint,
        'class_names': list(self.class_names),
        'class_names_source': self.metadata.get('class_names_source', ''),
        'trained_on': {k: self.metadata[k] for k in ('dataset', 'protocol', 'held_out_subject',
                                                     'held_out_dataset')
                       if k in self.metadata},
        'video': {'label': self.label, 'probabilities': probs(self.video_probabilities),
                  'num_clips': p.num_clips, 'still': self.still,
                  'pooled_clips': [int(i) for i in self.pooled_clips],
                  'pooling': ('mean of clip probabilities (every clip is still: none is '
                              'meaningful)' if self.still else
                              'mean of the probabilities of the clips that move')},
        'clips': clips,
        'frames': {'decoded': track.num_frames - len(track.unreadable),
                   'total': track.num_frames,
                   'with_face': int(len(track.usable)),
                   'fps': fps,
                   'skipped_without_face': len(track.without_face),
                   'skipped_unreadable': len(track.unreadable),
                   'skipped_indices': sorted(track.without_face + track.unreadable)},
        'clips_skipped': len(p.skipped_clips),
        'skipped_clips': list(p.skipped_clips),
        'alignment': dict(self.alignment),
        'still_motion_threshold': video_lib.STILL_MOTION,
        'preprocessing': {'align': p.options.align, 'upsample': p.options.upsample,
                          'aligned_size': p.options.size, 'crop': [clip_format.CROP_OFFSET, clip_format.CROP_OFFSET],
                          'crop_size': clip_format.CROP_SIZE,
                          'normalisation': {'mean': round(p.mean, 4),
                                            'scale': round(p.scale, 4)},
                          'sampling': p.sampling},
    }


def generic_class_names(num_classes: int) -> list[str]:
  return [f'class_{i}' for i in range(num_classes)]


def from_official_weights(path: str, num_classes: int | None = None,
                          neighbor_num: int = 4,
                          class_names: Sequence[str] | None = None,
                          flow_refinement: bool = False) -> Predictor:
  """Predictor from an official PyTorch `state_dict` (.pth or .npz).

  `flow_refinement` builds the model with the flow refinement at its
  initialisation (it then predicts the official flow exactly).
  """
  convert = _convert()
  state_dict = convert.load_state_dict(path)
  model = convert.import_official(state_dict, num_classes, neighbor_num, source=path,
                                  flow_refinement=flow_refinement)
  metadata = {'class_names_source': 'argument'} if class_names is not None else {}
  return Predictor(model, class_names, metadata, source=path)


def from_checkpoint(directory: str, step: int | None = None,
                    class_names: Sequence[str] | None = None) -> Predictor:
  """Predictor from a checkpoint written by `mol_jax.convert` or training.

  Class names, first found: `class_names`; the checkpoint's `metadata`
  item (training and `mol_jax.convert --class_names` write them);
  `class_0`, `class_1`, ...
  """
  model = checkpointing.restore_model(directory, step)
  metadata = checkpointing.load_metadata(directory, step)
  if metadata.get('class_names') is not None:
    metadata['class_names_source'] = 'checkpoint metadata'
  if class_names is not None:
    metadata['class_names_source'] = 'argument'
  else:
    class_names = metadata.get('class_names')
  return Predictor(model, class_names, metadata, source=directory)


def from_state_dict(state_dict: Mapping[str, np.ndarray], num_classes: int | None = None,
                    neighbor_num: int = 4) -> Predictor:
  return Predictor(_convert().import_official(state_dict, num_classes, neighbor_num))


def _convert():
  """`mol_jax.convert`, imported on use: `python -m mol_jax.convert` runs it
  as `__main__`, and a copy already imported by `import mol_jax` would make
  runpy warn on every conversion."""
  return importlib.import_module('mol_jax.convert')
