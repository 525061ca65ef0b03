"""The record every build path makes of a clip (`mol_jax.data.records`)."""

import numpy as np
import tensorflow_datasets as tfds

from mol_jax.data import layouts
from mol_jax.data import preprocess
from mol_jax.data import records


def test_a_clip_result_becomes_a_record_or_a_counted_skip():
  """What both build paths run per clip (`records.example_or_skip`)."""
  job = preprocess.ClipJob('v1_c003', tuple(f'img{i}.jpg' for i in range(8)), tuple(range(8)))
  entry = layouts.VideoEntry(folder='raw/v1', subject='s1', video_id='v1', emotion='happiness')
  item = (job, entry, 'positive')
  clip = preprocess.Clip(video=np.full((8, 144, 144, 1), 7, np.uint8),
                         flow=np.ones((7, 144, 144, 2), np.float16),
                         landmarks=np.zeros((8, 68, 2), np.float32),
                         frame_indices=np.arange(3, 11, dtype=np.int32),
                         matrices=np.zeros((8, 2, 3), np.float32), reused_boxes=2,
                         extra={'motion': np.zeros((2,), np.float32)})
  summary = preprocess.SkipSummary('test')
  key, example = records.example_or_skip(item, clip, summary)
  assert key == 'v1_c003'
  assert sorted(example) == ['flow', 'frame_indices', 'label', 'landmarks', 'motion',
                             'subject', 'video', 'video_id']
  assert (example['label'], example['subject'], example['video_id']) == ('positive', 's1', 'v1')
  assert example['video'] is clip.video and example['frame_indices'] is clip.frame_indices
  # The record fits the schema every builder declares (`motion` is an extra feature).
  schema = records.features(layouts.THREE_CLASS,
                            {'motion': tfds.features.Tensor(shape=(2,), dtype=np.float32)})
  encoded = schema.encode_example(example)
  assert encoded['label'] == layouts.THREE_CLASS.index('positive')
  skip = preprocess.SkipClip(preprocess.NO_FACE, 'raw/v1/img0.jpg', 'no face')
  assert records.example_or_skip(item, skip, summary) is None
  assert (summary.clips_built, summary.reused_boxes) == (1, 2)
  assert summary.counts == {preprocess.NO_FACE: 1}
  assert summary.examples[preprocess.NO_FACE] == ['raw/v1/img0.jpg']
