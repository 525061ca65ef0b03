"""The record of one clip: its TFDS features and how a built clip fills them.

What every way of building writes and what every reader expects: the
in-process build (`mol_jax.data.builder`) and the Apache Beam build
(`mol_jax.data.beam_build`) both turn a pre-processed clip into its record
here, so that the two write the same bytes, and count what they skip the same
way.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import tensorflow_datasets as tfds

from mol_jax import clip_format
from mol_jax.data import layouts
from mol_jax.data import preprocess

# A planned clip: its job, its video and its label.
Item = tuple[preprocess.ClipJob, layouts.VideoEntry, str]
Example = tuple[str, dict[str, Any]]


def features(classes: Sequence[str], extra: dict[str, Any] | None = None
             ) -> tfds.features.FeaturesDict:
  """The features of every micro-expression builder, and a builder's `extra` ones."""
  size = clip_format.STORED_SIZE
  return tfds.features.FeaturesDict({
      **(extra or {}),
      'video': tfds.features.Tensor(shape=(clip_format.NUM_FRAMES, size, size, 1),
                                    dtype=np.uint8),
      'flow': tfds.features.Tensor(shape=(clip_format.NUM_PAIRS, size, size, 2),
                                   dtype=np.float16),
      'landmarks': tfds.features.Tensor(
          shape=(clip_format.NUM_FRAMES, clip_format.NUM_LANDMARKS, 2), dtype=np.float32),
      'label': tfds.features.ClassLabel(names=list(classes)),
      'subject': tfds.features.Text(),
      'video_id': tfds.features.Text(),
      'frame_indices': tfds.features.Tensor(shape=(clip_format.NUM_FRAMES,), dtype=np.int32),
  })


def clip_example(job: preprocess.ClipJob, clip: preprocess.Clip, entry: layouts.VideoEntry,
                 label: str) -> Example:
  """The (key, example) of a built clip."""
  return job.key, {
      'video': clip.video,
      'flow': clip.flow,
      'landmarks': clip.landmarks,
      'label': label,
      'subject': entry.subject,
      'video_id': entry.video_id,
      'frame_indices': clip.frame_indices,
      **clip.extra,
  }


def example_or_skip(item: Item, result: preprocess.Clip | preprocess.SkipClip,
                    summary: preprocess.SkipSummary) -> Example | None:
  """The record of a pre-processed clip job, or None when it was skipped.

  Either way `summary` counts it: a build's count of built and skipped
  clips comes from here on every path.
  """
  job, entry, label = item
  if isinstance(result, preprocess.SkipClip):
    summary.skip(result.reason, result.path, result.detail)
    return None
  summary.built(result.reused_boxes)
  return clip_example(job, result, entry, label)
