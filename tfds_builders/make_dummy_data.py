"""Writes the `dummy_data/` folders of every builder from synthetic faces.

No licensed frame is ever used: every video is rendered by
`mol_jax.data.synthetic` (faces made from `skimage.data.astronaut()`), and the
coding sheets are small .xlsx files with the columns of the real ones.

  python tfds_builders/make_dummy_data.py [--only casme2,samm,...]

Each builder's dummy data holds, besides valid 8-frame videos, the bad inputs
that must be skipped and counted: an unknown emotion, a video with fewer than
8 frames, a folder with no image, and (release layouts) a sheet row whose
folder is missing. CAS(ME)^3 adds a task video holding several
micro-expressions (a repeated subject and task), a frame range with fewer
than 8 frames, the owners' corrections of the v2 sheet and unusable frame
cells; 4DME an Emotion cell with two categories; MMEW both of its trees.
"""

from __future__ import annotations

import argparse
import os
import shutil

import cv2
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


# CAS(ME)^3 Part A. Task videos: (subject, face, task folder, segments of
# (first frame, frames, emotion of the motion)); the frames are numbered
# continuously through the segments, as in a long task recording.
CASME3_TASKS = [
    ('spNO.1', 0, 'a', [(1, 12, 'happiness'), (13, 12, 'disgust'), (25, 8, 'surprise')]),
    ('spNO.2', 1, 'j', [(1, 8, 'others')]),
    ('spNO.2', 1, 'b', [(1, 8, 'fear')]),
    ('spNO.40', 2, 'e', [(1836, 12, 'surprise')]),
]
# Label sheet rows: Subject, Filename, Onset, Apex, Offset, AU, Objective
# class, emotion.
CASME3_ROWS = [
    ['spNO.1', 'a', 1, 4, 10, 'R12', 'I', 'happy'],       # spNO1_a: frames 1-10.
    ['spNO.1', 'a', 14, 17, 23, '4+7', 'IV', 'disgust'],  # spNO1_a2, same video.
    ['spNO.1', 'a', 26, 27, 30, '1+2', 'V', 'surprise'],  # spNO1_a3: 5 frames, stretched.
    ['spNO.1', 'a', 32, 32, 32, '1', 'V', 'surprise'],    # spNO1_a4: 1 frame, too few.
    ['spNO.2', 'J', 1, 3, 8, '14', 'VII', 'Others'],      # Upper-case J: folder j.
    ['spNO.2', 'b', 0, 0, 8, '4', 'III', 'fear'],         # Onset 0: files from 1.
    ['spNO.2', 'c', 1, 3, 8, '12', 'I', 'bogus'],         # Unknown emotion.
    ['spNO.2', 'd', 5, 7, 12, '1', 'V', 'surprise'],      # No folder.
    # Offset 0 in the v2 sheet: the owners' full file gives 1845, then 2403.
    ['spNO.40', 'e', 1838, 1841, 0, '5', 'V', 'surprise'],
    ['spNO.40', 'e', 2410, 2412, 0, '5', 'V', 'surprise'],  # 2403 < onset: skipped.
    ['spNO.40', 'f', '/', 3, 8, '5', 'V', 'surprise'],    # Onset not a number.
]
# The same micro-expressions cut into the official MOL layout.
CASME3_MOL = [
    ('spNO1', 0, 'spNO1_a', 'happiness', 8), ('spNO2', 1, 'spNO2_b', 'disgust', 8),
    ('spNO2', 1, 'spNO2_j', 'others', 8), ('spNO2', 1, 'spNO2_c', 'bogus', 8),
    ('spNO2', 1, 'spNO2_k', 'fear', 6), ('spNO2', 1, 'spNO2_l', 'fear', 1),
]


def write_casme3(root: str) -> None:
  """Part A as released: `part_A/<Subject>/<task>/color/<N>.jpg` + the label sheet."""
  for subject, face, task, segments in CASME3_TASKS:
    folder = os.path.join(root, 'part_A', subject, task, 'color')
    for k, (first, frames, emotion) in enumerate(segments):
      write_frames(folder, face, emotion, frames, '{}.jpg', first=first, seed=first + k)
  write_sheet(os.path.join(root, 'cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx'),
              ['Subject', 'Filename', 'Onset', 'Apex', 'Offset', 'AU',
               'Objective class', 'emotion'], CASME3_ROWS)


def write_gray(folder: str) -> None:
  """Rewrites a folder's frames as 1-channel JPEGs (4DME's gray modality)."""
  for name in os.listdir(folder):
    path = os.path.join(folder, name)
    gray = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
    if gray is None or not cv2.imwrite(path, gray, [cv2.IMWRITE_JPEG_QUALITY,
                                                     CONFIG.jpeg_quality]):
      raise OSError(f'Could not rewrite {path} in gray.')


# 4DME: (sub_ID, face, fold_name, Emotion, frames); frames None = no folder.
# The frame names are not known (docs/DATA.md); these use the recording's
# frame number, as the sheet's Onset..Offset.
FOURDME = [
    ('S01', 3, 'S01_1st_001_01_1', 'Positive', 8),
    ('S01', 3, 'S01_1st_002_01_1', 'Negative', 8),
    ('S02', 4, 'S02_1st_001_01_1', 'Surprise', 8),
    ('S02', 4, 'S02_1st_002_01_1', 'Repression', 8),
    ('S02', 4, 'S02_1st_003_01_1', 'Others', 8),
    ('S02', 4, 'S02_1st_004_01_1', 'Surprise+Positive', 8),  # Two categories.
    ('S02', 4, 'S02_1st_005_01_1', 'Bogus', 8),
    ('S02', 4, 'S02_1st_006_01_1', 'Negative', 5),
    ('S02', 4, 'S02_1st_007_01_1', 'Negative', None),
]
FOURDME_MOL = [
    ('S01', 3, 'S01_1st_001_01_1', 'positive', 8),
    ('S02', 4, 'S02_1st_002_01_1', 'repression', 8),
    ('S02', 4, 'S02_1st_003_01_1', 'others', 8),
    ('S02', 4, 'S02_1st_005_01_1', 'bogus', 8),
    ('S02', 4, 'S02_1st_006_01_1', 'negative', 5),
]


def write_fourdme(root: str) -> None:
  """4DME as MEB reads it: `gray_micro/<sub_ID>/<fold_name>/` + the release sheet."""
  header = ['fold', 'sub_ID', 'fold_name', 'Onset', 'Apex', 'Offset', 'AUs',
            'AU1', 'AU4', 'AU12', 'Emotion', 'Positive', 'Negative', 'Surprise',
            'Repression', 'Others', 'eye blink']
  rows = []
  for k, (subject, face, fold, emotion, frames) in enumerate(FOURDME):
    onset = 200 + 20 * k
    indicators = [int(c.lower() in emotion.lower()) for c in
                  ('Positive', 'Negative', 'Surprise', 'Repression', 'Others')]
    rows.append([k + 1, subject, fold, onset, onset + 3, onset + (frames or 8) - 1,
                 'AU12(k)+AU4', 0, 1, 1, emotion, *indicators, 0])
    if frames is None:
      continue
    folder = os.path.join(root, 'gray_micro', subject, fold)
    write_frames(folder, face, emotion, frames, '{:05d}.jpg', first=onset, seed=k)
    write_gray(folder)
  write_sheet(os.path.join(root, '4DME_Labelling_Micro_release v1.xlsx'), header, rows)


# MMEW: (Subject, face, Filename, sheet emotion, emotion folder, frames).
MMEW = [
    ('S01', 5, 'S01-01-001', 'happiness', 'happiness', 8),
    ('S01', 5, 'S01-03-001', 'disgust', 'disgust', 8),
    ('S02', 6, 'S02-02-001', 'surprise', 'surprise', 8),
    ('S02', 6, 'S02-07-001', 'others', 'repression', 8),  # MMEW's seventh class.
    ('S02', 6, 'S02-05-001', 'fear', 'fear', 5),
    ('S02', 6, 'S02-06-001', 'sadness', 'sadness', None),
    ('S02', 6, 'S02-08-001', 'bogus', 'bogus', 8),
]
# MEB's tree, no sheet: labels from the folders (`others/` and `repression/`
# are the same class).
MMEW_MEB = [
    ('S01', 5, 'S01-01-002', None, 'happiness', 8),
    ('S02', 6, 'S02-07-002', None, 'others', 8),
    ('S03', 7, 'S03-07-001', None, 'repression', 8),
    ('S03', 7, 'S03-04-001', None, 'anger', 5),
    ('S03', 7, 'S03-09-001', None, 'bogus', 8),
]
MMEW_MOL = [
    ('S01', 5, 'S01_01_001', 'happiness', 8), ('S02', 6, 'S02_02_001', 'surprise', 8),
    ('S02', 6, 'S02_07_001', 'others', 8), ('S02', 6, 'S02_05_001', 'fear', 5),
]


def write_mmew(root: str, samples, owners_tree: bool) -> None:
  """MMEW: the owners' `<subject>/<emotion>/<sample>/<N>.jpg` tree with
  `MMEW_Micro_Exp.xlsx`, or MEB's `Micro_Expression/<emotion>/<sample>/`."""
  rows = []
  for k, (subject, face, filename, emotion, folder_name, frames) in enumerate(samples):
    rows.append([subject, filename, 1, 4, frames or 8, 'AU12', emotion, ''])
    if frames is None:
      continue
    folder = (os.path.join(root, subject, folder_name, filename) if owners_tree
              else os.path.join(root, 'Micro_Expression', folder_name, filename))
    write_frames(folder, face, folder_name, frames, '{}.jpg', first=1, seed=k)
  if owners_tree:
    write_sheet(os.path.join(root, 'MMEW_Micro_Exp.xlsx'),
                ['Subject', 'Filename', 'OnsetFrame', 'ApexFrame', 'OffsetFrame',
                 'Action Units', 'Estimated Emotion', 'remarks'], rows)


def write_mol_videos(root: str, videos, name: str, gray: bool = False) -> None:
  """The official MOL layout from (subject, face, video, emotion, frames)."""
  for k, (_, face, video, emotion, frames) in enumerate(videos):
    folder = os.path.join(root, emotion, video)
    write_frames(folder, face, emotion, frames, name, first=1 + 3 * k, seed=k)
    if gray:
      write_gray(folder)


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
  elif name == 'casme3':
    _fresh(root)
    write_casme3(os.path.join(root, 'release'))
    write_mol_videos(os.path.join(root, 'mol'), CASME3_MOL, '{}.jpg')
  elif name == 'fourdme':
    _fresh(root)
    write_fourdme(os.path.join(root, 'release'))
    write_mol_videos(os.path.join(root, 'mol'), FOURDME_MOL, '{:05d}.jpg', gray=True)
  elif name == 'mmew':
    _fresh(root)
    write_mmew(os.path.join(root, 'release'), MMEW, owners_tree=True)
    write_mmew(os.path.join(root, 'release_meb'), MMEW_MEB, owners_tree=False)
    write_mol_videos(os.path.join(root, 'mol'), MMEW_MOL, '{}.jpg')
  else:
    videos = {'casme2': CASME2, 'samm': SAMM, 'smic': SMIC}[name]
    _fresh(root)
    write_mol(os.path.join(root, 'mol'), name, videos)
    write_release(os.path.join(root, 'release'), name, videos)
  print('wrote', os.path.relpath(root, HERE))


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--only', default='synthetic_me,casme2,samm,smic,megc2019,'
                      'casme3,fourdme,mmew')
  for name in parser.parse_args().only.split(','):
    make(name)


if __name__ == '__main__':
  main()
