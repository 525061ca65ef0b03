"""Writes the `dummy_data/` folders of every builder from synthetic faces.

No licensed frame is ever used: every video is rendered by
`mol_jax.data.synthetic` (faces made from `skimage.data.astronaut()`), and the
coding sheets are small .xlsx files with the columns of the real ones.

  python tfds_builders/make_dummy_data.py [--only casme2,samm,...]

Each builder's dummy data holds, besides valid 8-frame videos, the bad inputs
that must be skipped and counted: an unknown emotion, a video with fewer than
8 frames, a folder with no image, and (release layouts) a sheet row whose
folder is missing.
"""

from __future__ import annotations

import argparse
import os
import shutil

import numpy as np

from mol_jax.data import synthetic

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIG = synthetic.SyntheticConfig(num_subjects=1, videos_per_class=1,
                                   min_frames=8, max_frames=8, jpeg_quality=80,
                                   seed=1234)
_SUBJECTS: dict[int, synthetic.Subject] = {}

# The class whose action units animate a video of each emotion.
_MOTION_CLASS = {'happiness': 'positive', 'positive': 'positive',
                 'surprise': 'surprise'}


def _subject(index: int) -> synthetic.Subject:
  if index not in _SUBJECTS:
    _SUBJECTS[index] = synthetic.make_subject(index, CONFIG)
  return _SUBJECTS[index]


def write_frames(folder: str, subject_index: int, emotion: str, num_frames: int,
                 name: str, first: int, seed: int) -> None:
  """Renders `num_frames` frames of a synthetic micro-expression."""
  rng = np.random.default_rng([CONFIG.seed, subject_index, seed])
  subject = _subject(subject_index)
  label = _MOTION_CLASS.get(emotion.lower(), 'negative')
  motion, _ = synthetic.make_motion(subject, label, max(num_frames, 8), CONFIG, rng)
  motion.coeffs = motion.coeffs[:num_frames]
  motion.head = motion.head[:num_frames]
  synthetic.write_video(subject, motion, folder, first, CONFIG, rng, name=name)


def write_empty(folder: str) -> None:
  """A video folder with no image (a note only)."""
  os.makedirs(folder, exist_ok=True)
  with open(os.path.join(folder, 'README.txt'), 'w') as f:
    f.write('Intentionally empty video folder (dummy data).\n')


def write_sheet(path: str, header: list[str], rows: list[list[object]],
                preamble: int = 0) -> None:
  import openpyxl  # pylint: disable=g-import-not-at-top
  book = openpyxl.Workbook()
  sheet = book.active
  for i in range(preamble):
    sheet.append([f'Free text line {i + 1} (dummy coding sheet).'])
  sheet.append(header)
  for row in rows:
    sheet.append(row)
  book.save(path)


# (subject, subject index for the face, video, emotion, frames); frames 0 =
# empty folder, None = folder missing (sheet row only).
CASME2 = [
    ('01', 0, 'EP01_01', 'happiness', 8), ('01', 0, 'EP03_02', 'disgust', 8),
    ('02', 1, 'EP04_01', 'repression', 8),
    ('02', 1, 'EP05_02', 'others', 8), ('02', 1, 'EP06_01', 'fear', 8),
    ('02', 1, 'EP07_01', 'bogus', 8), ('02', 1, 'EP08_01', 'happiness', 5),
    ('02', 1, 'EP09_01', 'surprise', 0), ('02', 1, 'EP10_01', 'surprise', None),
]
SAMM = [
    ('006', 2, '006_1_2', 'Happiness', 8), ('006', 2, '006_1_3', 'Anger', 8),
    ('007', 3, '007_3_1', 'Surprise', 8),
    ('007', 3, '007_3_2', 'Other', 8), ('007', 3, '007_4_1', 'Disgust', 8),
    ('007', 3, '007_5_1', 'Bogus', 8), ('007', 3, '007_6_1', 'Anger', 6),
    ('007', 3, '007_7_1', 'Anger', 0), ('007', 3, '007_8_1', 'Anger', None),
]
SMIC = [
    ('s1', 4, 's1_ne_01', 'negative', 8),
    ('s2', 5, 's2_sur_01', 'surprise', 8), ('s2', 5, 's2_ne_02', 'negative', 8),
    ('s2', 5, 's2_xx_01', 'bogus', 8), ('s2', 5, 's2_po_03', 'positive', 4),
    ('s2', 5, 's2_ne_04', 'negative', 0),
]


def _frame_name(dataset: str, subject: str) -> str:
  return {'casme2': 'img{}.jpg', 'samm': subject + '_{:05d}.jpg',
          'smic': 'image{:06d}.jpg'}[dataset]


def _video_id(dataset: str, subject: str, video: str) -> str:
  return f'{subject}_{video}' if dataset == 'casme2' else video


def write_mol(root: str, dataset: str, videos) -> None:
  """The official MOL layout `<root>/<emotion>/<video>/<frames>`."""
  for k, (subject, face, video, emotion, frames) in enumerate(videos):
    if frames is None:
      continue
    folder = os.path.join(root, emotion.lower(), _video_id(dataset, subject, video))
    if frames == 0:
      write_empty(folder)
    else:
      write_frames(folder, face, emotion, frames, _frame_name(dataset, subject),
                   first=40 + 3 * k, seed=k)


def write_release(root: str, dataset: str, videos) -> None:
  """The owners' layout with a coding sheet (CASME II, SAMM) or folder labels."""
  rows = []
  for k, (subject, face, video, emotion, frames) in enumerate(videos):
    if dataset == 'casme2':
      folder = os.path.join(root, 'CASME2_RAW_selected', f'sub{subject}', video)
      rows.append([int(subject), video, 40, 43, 47, '12', emotion])
    elif dataset == 'samm':
      folder = os.path.join(root, 'SAMM', subject, video)
      rows.append([subject, video, 5562, 5565, 5569, 0, 'AU12', emotion])
    else:
      folder = os.path.join(root, 'HS', subject, 'micro', emotion, video)
    if frames is None:
      continue
    if frames == 0:
      write_empty(folder)
    else:
      write_frames(folder, face, emotion, frames, _frame_name(dataset, subject),
                   first=40 + 3 * k, seed=k)
  if dataset == 'casme2':
    write_sheet(os.path.join(root, 'CASME2-coding-20140508.xlsx'),
                ['Subject', 'Filename', 'OnsetFrame', 'ApexFrame', 'OffsetFrame',
                 'Action Units', 'Estimated Emotion'], rows)
  elif dataset == 'samm':
    write_sheet(os.path.join(root, 'SAMM_Micro_FACS_Codes_v2.xlsx'),
                ['Subject', 'Filename', 'Inducement Code', 'Onset Frame',
                 'Apex Frame', 'Offset Frame', 'Duration', 'Type',
                 'Action Units', 'Notes', 'Estimated Emotion'],
                [[r[0], r[1], 1, r[2], r[3], r[4], 8, 'Micro - 1/2', r[6], '',
                  r[7]] for r in rows], preamble=13)


def _fresh(path: str) -> str:
  if os.path.exists(path):
    shutil.rmtree(path)
  os.makedirs(path)
  return path


def make(name: str) -> None:
  root = os.path.join(HERE, name, 'dummy_data')
  if name == 'synthetic_me':
    if os.path.exists(root):
      shutil.rmtree(root)
    synthetic.generate(root, synthetic.SyntheticConfig(
        num_subjects=1, videos_per_class=1, min_frames=8, max_frames=9,
        jpeg_quality=80, seed=7))
  elif name == 'megc2019':
    _fresh(root)
    write_release(os.path.join(root, 'casme2'), 'casme2',
                  [v for v in CASME2 if v[2] in ('EP01_01', 'EP07_01')])
    write_mol(os.path.join(root, 'samm'), 'samm',
              [v for v in SAMM if v[2] in ('006_1_3', '007_3_2')])
    write_release(os.path.join(root, 'smic'), 'smic',
                  [v for v in SMIC if v[2] in ('s1_ne_01',)])
  else:
    videos = {'casme2': CASME2, 'samm': SAMM, 'smic': SMIC}[name]
    _fresh(root)
    write_mol(os.path.join(root, 'mol'), name, videos)
    write_release(os.path.join(root, 'release'), name, videos)
  print('wrote', os.path.relpath(root, HERE))


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--only', default='synthetic_me,casme2,samm,smic,megc2019')
  for name in parser.parse_args().only.split(','):
    make(name)


if __name__ == '__main__':
  main()
