"""A small TFDS set with the real builders' features and traceable values.

The records are made so that every value says where it came from: flow holds
the pixel's own (x, y) in the 144x144 record (so the crop offset can be read
back), landmarks encode the record index and frame, and the video is a
known pattern.
"""

import numpy as np
import tensorflow_datasets as tfds

from mol_jax.data import records

SUBJECTS = {'a': 5, 'b': 3, 'c': 4}  # Clips per subject.
CLASSES = ('surprise', 'positive', 'negative')
NAME = 'fake_me'


def record(subject: str, j: int):
  idx = {'a': 0, 'b': 100, 'c': 200}[subject] + j
  yy, xx = np.mgrid[:144, :144]
  video = ((yy + 2 * xx + 7 * idx + np.arange(8)[:, None, None]) % 200
           + 20 * (subject == 'b')).astype(np.uint8)[..., None]
  flow = np.broadcast_to(np.stack([xx, yy], -1), (7, 144, 144, 2))
  landmarks = np.zeros((8, 68, 2), np.float32)
  landmarks[..., 0] = 1000 * idx + np.arange(8)[:, None]
  landmarks[..., 1] = np.arange(68)[None]
  return {'video': video, 'flow': flow.astype(np.float16),
          'landmarks': landmarks, 'label': idx % 3, 'subject': subject,
          'video_id': f'{subject}_v{j}', 'frame_indices': np.arange(8, dtype=np.int32)}


class FakeMe(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Same features as the real builders, traceable values."""

  VERSION = tfds.core.Version('1.0.0')

  def _info(self):
    return tfds.core.DatasetInfo(builder=self, features=records.features(CLASSES))

  def _split_generators(self, dl_manager):
    del dl_manager
    return {s: self._generate_examples(s, n) for s, n in SUBJECTS.items()}

  def _generate_examples(self, subject, n):
    for j in range(n):
      yield f'{subject}{j}', record(subject, j)


def build(path) -> str:
  """Builds the set into the folder `path`; returns it as a `data_dir`."""
  builder = FakeMe(data_dir=str(path), file_format='array_record')
  builder.download_and_prepare()
  # Read back like any built set: from the files, by name.
  return str(path)
