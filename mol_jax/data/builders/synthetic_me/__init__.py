"""synthetic_me: licence-free micro-expression clips (see mol_jax.data.synthetic)."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from mol_jax import clip_format
from mol_jax.data import builder, layouts
from mol_jax.data import synthetic


# Every synthetic config moves together (1.4.0: the moving region; 1.5.0: the
# registration mesh, which changes `demo`).
VERSION = '1.5.0'
RELEASE_NOTES = {
    '1.0.0': 'Initial release (per-frame alignment).',
    '1.1.0': 'Per-clip configs: one alignment matrix from the onset frame.',
    '1.2.0': '`demo`: per-clip alignment, then registration onto the reference face.',
    '1.3.0': 'Every record holds the exact motion: `true_flow` [7, 144, 144, 2] '
             '(float16) and `true_landmarks` [8, 68, 2], in the stored frames.',
    '1.4.0': '`moving_region` [144, 144] uint8: where the action units moved the face.',
    '1.5.0': '`demo`: registration on stable landmarks (no eyelids or inner lips), '
             'by a warp that cannot fold (mol_jax.data.registration).',
}


class SyntheticConfig(builder.MicroExpressionConfig):
  """A synthetic set: generator config plus pre-processing options."""

  def __init__(self, *, generator: synthetic.SyntheticConfig, **kwargs):
    super().__init__(classes=synthetic.CLASSES, version=VERSION,
                     release_notes=RELEASE_NOTES, **kwargs)
    self.generator = generator


def _configs() -> list[SyntheticConfig]:
  default = synthetic.SyntheticConfig()
  return [
      SyntheticConfig(
          name='default', generator=default, max_clips_per_video=1,
          description=('4 subjects x 3 classes x 6 videos of 30-60 frames, one '
                       'official clip per video, per-frame alignment; builds '
                       'in about 3 minutes on 2 cores.')),
      SyntheticConfig(
          name='default_per_clip', generator=default, max_clips_per_video=1,
          align='per_clip',
          description='As default, with one alignment per clip.'),
      SyntheticConfig(
          name='default_all_clips', generator=default,
          description='As default, with every official clip (n // 8 per video).'),
      SyntheticConfig(
          name='demo', generator=dataclasses.replace(default, amplitude_px=(3.0, 5.0)),
          max_clips_per_video=1, align='registered',
          description=('As default_per_clip, registered onto the reference face '
                       'shape, with peak action-unit motion of 3-5 px (1-3 px in '
                       'default): the embedded demo, which must learn it in a few '
                       'minutes of CPU training.')),
      SyntheticConfig(
          name='flow_pretrain',
          generator=dataclasses.replace(default, amplitude_px=(1.0, 5.0), seed=1),
          max_clips_per_video=2, align='registered',
          description=('For pre-training the flow layers on the exact motion '
                       '(configs/flow_pretrain.py): as demo, from another seed '
                       '(other faces and motions than demo\'s subjects), 1-5 px '
                       'action-unit motion, two clips per video.')),
      SyntheticConfig(
          name='small', generator=synthetic.SMALL, max_clips_per_video=1,
          description='2 subjects x 3 classes x 1 video, for tests.'),
      SyntheticConfig(
          name='small_b', generator=dataclasses.replace(synthetic.SMALL, seed=1),
          max_clips_per_video=1,
          description=('As small, generated from another seed (other faces and '
                       'motions): a second dataset for the tests of the '
                       'cross-dataset protocols.')),
  ]


class Builder(builder.MicroExpressionBuilder):
  """DatasetBuilder for synthetic_me."""

  name = 'synthetic_me'

  BUILDER_CONFIGS = _configs()
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Nothing to download: the raw frames are generated. Optionally pass
  --manual_dir=<folder written by `python -m mol_jax.data.synthetic <folder>`> to
  build from a set generated beforehand (its manifest.json is checked).
  """

  @classmethod
  def training_config_file(cls):
    return None  # configs/demo.py and test.py train on its demo and small configs.

  def raw_dir(self, dl_manager: tfds.download.DownloadManager) -> str:
    """Where the raw frames of this config are (generated if needed)."""
    # The manual dir is optional here: `dl_manager.manual_dir` raises when it
    # is absent or empty.
    try:
      manual = dl_manager.manual_dir
    except (AssertionError, ValueError):
      manual = None
    if manual and (epath.Path(manual) / synthetic.MANIFEST).exists():
      return os.fspath(manual)
    generator = self.builder_config.generator
    folder = epath.Path(dl_manager.download_dir) / (
        f'synthetic_me_raw_{_fingerprint(generator)}')
    return synthetic.generate(os.fspath(folder), generator)

  def _extra_features(self):
    stored = clip_format.STORED_SIZE
    return {
        'true_flow': tfds.features.Tensor(shape=(clip_format.NUM_PAIRS, stored, stored, 2),
                                          dtype=np.float16),
        'true_landmarks': tfds.features.Tensor(
            shape=(clip_format.NUM_FRAMES, clip_format.NUM_LANDMARKS, 2), dtype=np.float32),
        'moving_region': tfds.features.Tensor(shape=(stored, stored), dtype=np.uint8),
    }

  def _annotator(self):
    return functools.partial(synthetic.clip_truth, self._raw_root,
                             self.builder_config.generator)

  def _videos(self, dl_manager):
    root = self.raw_dir(dl_manager)
    self._raw_root = root
    manifest = synthetic.load_manifest(root)
    return [layouts.VideoEntry(os.fspath(epath.Path(root) / 'frames' / v['label'] / v['video']),
                                v['subject'], v['video'], v['label'])
            for v in manifest['videos']]


def _fingerprint(config: synthetic.SyntheticConfig) -> str:
  text = repr(sorted(dataclasses.asdict(config).items()))
  return hashlib.sha1(text.encode()).hexdigest()[:10]
