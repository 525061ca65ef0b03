"""Raw micro-expression layouts and class sets: which videos a folder holds.

Two kinds of raw folder are read (see docs/DATA.md):

* the official MOL layout, made by hand: `<root>/<emotion>/<video>/<frames>`,
  subject = the video name before its first '_' ('01_EP19_05f' -> '01');
* the layouts the owners ship: CASME II (`CASME2_RAW_selected/sub<NN>/
  <Filename>/img<N>.jpg` + `CASME2-coding-*.xlsx`), SAMM (`SAMM/<subject>/
  <Filename>/<subject>_<N>.jpg` + `SAMM_Micro_FACS_Codes_v2.xlsx`, header on
  the 14th row) and SMIC-HS (`HS/<subject>/micro/<emotion>/<clip>/
  image<N>.jpg`).

`mol_jax.data.builder.MicroExpressionBuilder` turns the `VideoEntry`s listed
here into one TFDS example per official 8-frame clip.
"""

from __future__ import annotations

import dataclasses
import glob
import os
from typing import Iterable, Sequence

# Class sets, in label order (MOL / MEGC 2019).
CASME2_5 = ('surprise', 'happiness', 'disgust', 'repression', 'others')
SAMM_5 = ('surprise', 'happiness', 'anger', 'contempt', 'others')
THREE_CLASS = ('surprise', 'positive', 'negative')

# Every emotion name that may appear in a coding sheet or folder, after
# `normalise_emotion`.
KNOWN_EMOTIONS = frozenset({
    'surprise', 'happiness', 'disgust', 'repression', 'others', 'fear',
    'sadness', 'anger', 'contempt', 'positive', 'negative'})
_SYNONYMS = {'other': 'others', 'happy': 'happiness', 'sad': 'sadness',
             'surprised': 'surprise', 'disgusted': 'disgust', 'angry': 'anger',
             'repressed': 'repression'}
# MEGC 2019 composite classes.
_THREE_CLASS_MAP = {
    'surprise': 'surprise', 'happiness': 'positive', 'positive': 'positive',
    'negative': 'negative', 'disgust': 'negative', 'repression': 'negative',
    'anger': 'negative', 'contempt': 'negative', 'fear': 'negative',
    'sadness': 'negative'}


def normalise_emotion(name: str) -> str:
  name = str(name).strip().lower()
  return _SYNONYMS.get(name, name)


def map_emotion(name: str, classes: Sequence[str]) -> str | None:
  """Class of a raw emotion name in a class set (None: excluded).

  Raises:
    KeyError: the emotion is not a known name.
  """
  emotion = normalise_emotion(name)
  if emotion not in KNOWN_EMOTIONS:
    raise KeyError(emotion)
  if tuple(classes) == THREE_CLASS:
    return _THREE_CLASS_MAP.get(emotion)
  return emotion if emotion in classes else None


@dataclasses.dataclass(frozen=True)
class VideoEntry:
  """One raw video: its frame folder and what is known about it."""
  folder: str
  subject: str
  video_id: str
  emotion: str


# ----------------------------------------------------------------------------
# Layout readers.


def _subdirs(folder: str) -> list[str]:
  return sorted(n for n in os.listdir(folder)
                if os.path.isdir(os.path.join(folder, n)) and not n.startswith('.'))


def scan_mol_layout(root: str) -> list[VideoEntry]:
  """Videos of the official MOL layout `<root>/<emotion>/<video>/<frames>`."""
  entries = []
  for emotion in _subdirs(root):
    for video in _subdirs(os.path.join(root, emotion)):
      entries.append(VideoEntry(os.path.join(root, emotion, video),
                                video.split('_')[0], video, emotion))
  return entries


def read_sheet(path: str, required: Sequence[str]) -> list[dict[str, object]]:
  """Rows of the first worksheet of an .xlsx coding sheet as dicts.

  The header is the first row (among the first 30) that holds every name in
  `required` (SAMM's sheet starts with 13 rows of free text).

  Raises:
    ValueError: no such header, naming the file and the columns.
  """
  try:
    import openpyxl  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError('Reading coding sheets needs openpyxl: '
                      '`pip install openpyxl==3.1.5`.') from e
  workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
  try:
    rows = list(workbook.worksheets[0].iter_rows(values_only=True))
  finally:
    workbook.close()
  wanted = {r.lower() for r in required}
  for i, row in enumerate(rows[:30]):
    names = [str(c).strip() if c is not None else '' for c in row]
    if wanted <= {n.lower() for n in names}:
      header = [n.lower() for n in names]
      return [dict(zip(header, r)) for r in rows[i + 1:]
              if any(c is not None for c in r)]
  raise ValueError(f'{path}: no header row with columns {list(required)} in '
                   'the first 30 rows; is this the original coding sheet?')


def _find(root: str, patterns: Sequence[str], kind: str) -> str | None:
  """First match of glob patterns under root (root itself and one level down)."""
  for pattern in patterns:
    for depth in ('', '*'):
      hits = sorted(glob.glob(os.path.join(root, depth, pattern)))
      hits = [h for h in hits if (os.path.isdir(h) if kind == 'dir' else os.path.isfile(h))]
      if hits:
        return hits[0]
  return None


def _cell(value: object) -> str:
  """Sheet cell as text (integers read as floats lose their '.0')."""
  if isinstance(value, float) and value.is_integer():
    value = int(value)
  return str(value).strip()


def scan_casme2_release(root: str) -> list[VideoEntry]:
  """CASME II as released: `CASME2_RAW_selected/sub<NN>/<Filename>` + coding sheet."""
  sheet = _find(root, ['CASME2-coding-*.xlsx', 'CASME2*coding*.xlsx'], 'file')
  frames = _find(root, ['CASME2_RAW_selected', 'CASME2_RAW', 'CASME2-RAW'], 'dir')
  if sheet is None or frames is None:
    raise FileNotFoundError(
        f'{root}: CASME II release layout needs CASME2-coding-*.xlsx and the '
        'CASME2_RAW_selected/ folder (found sheet={sheet}, frames={frames}).')
  entries = []
  for row in read_sheet(sheet, ['Subject', 'Filename', 'Estimated Emotion']):
    subject = _cell(row['subject'])
    subject = f'{int(subject):02d}' if subject.isdigit() else subject
    filename = _cell(row['filename'])
    entries.append(VideoEntry(os.path.join(frames, f'sub{subject}', filename),
                              subject, f'{subject}_{filename}',
                              _cell(row['estimated emotion'])))
  return entries


def scan_samm_release(root: str) -> list[VideoEntry]:
  """SAMM as released: `SAMM/<subject>/<Filename>` + FACS coding sheet."""
  sheet = _find(root, ['SAMM_Micro_FACS_Codes*.xlsx'], 'file')
  if sheet is None:
    raise FileNotFoundError(f'{root}: SAMM release layout needs '
                            'SAMM_Micro_FACS_Codes_v2.xlsx.')
  frames = _find(root, ['SAMM'], 'dir') or root
  entries = []
  for row in read_sheet(sheet, ['Subject', 'Filename', 'Estimated Emotion']):
    subject = _cell(row['subject'])
    subject = f'{int(subject):03d}' if subject.isdigit() else subject
    filename = _cell(row['filename'])
    entries.append(VideoEntry(os.path.join(frames, subject, filename), subject,
                              filename, _cell(row['estimated emotion'])))
  return entries


def scan_smic_release(root: str) -> list[VideoEntry]:
  """SMIC-HS as released: `HS/<subject>/micro/<emotion>/<clip>/image<N>.jpg`."""
  hs = _find(root, ['HS'], 'dir')
  if hs is None:
    if any(os.path.isdir(os.path.join(root, s, 'micro')) for s in _subdirs(root)):
      hs = root
    else:
      raise FileNotFoundError(f'{root}: SMIC release layout needs '
                              'HS/<subject>/micro/<emotion>/<clip>/.')
  entries = []
  for subject in _subdirs(hs):
    micro = os.path.join(hs, subject, 'micro')
    if not os.path.isdir(micro):
      continue
    for emotion in _subdirs(micro):
      for clip in _subdirs(os.path.join(micro, emotion)):
        entries.append(VideoEntry(os.path.join(micro, emotion, clip), subject,
                                  clip, emotion))
  return entries


_RELEASE_SCANNERS = {
    'casme2': (scan_casme2_release, ['CASME2*coding*.xlsx']),
    'samm': (scan_samm_release, ['SAMM_Micro_FACS_Codes*.xlsx']),
    'smic': (scan_smic_release, ['HS']),
}


def find_videos(dataset: str, root: str) -> tuple[str, list[VideoEntry]]:
  """Detects the layout of `root` and lists its videos.

  Args:
    dataset: 'casme2', 'samm' or 'smic'.
    root: the folder received (manual_dir).

  Returns:
    ('release' or 'mol', entries).

  Raises:
    FileNotFoundError: `root` is missing or holds no video, naming it.
  """
  if not os.path.isdir(root):
    raise FileNotFoundError(f'{root} does not exist; pass --manual_dir=<the '
                            f'folder that holds the {dataset} data>.')
  scanner, markers = _RELEASE_SCANNERS[dataset]
  release = any(_find(root, [m], 'file') or _find(root, [m], 'dir')
                for m in markers)
  if dataset == 'smic' and not release:
    release = any(os.path.isdir(os.path.join(root, s, 'micro'))
                  for s in _subdirs(root))
  layout = 'release' if release else 'mol'
  entries = scanner(root) if release else scan_mol_layout(root)
  if not entries:
    raise FileNotFoundError(
        f'{root}: no videos found for {dataset}. Expected the official MOL '
        'layout <root>/<emotion>/<video>/<frames> or the release layout '
        '(see docs/DATA.md).')
  return layout, entries


def release_or_mol_videos(dataset: str, dl_manager,
                          subdir: str | None = None) -> list[VideoEntry]:
  """Videos under manual_dir (or its `subdir`) in either layout."""
  root = os.fspath(dl_manager.manual_dir)
  if subdir is not None:
    matches = [n for n in os.listdir(root) if n.lower() == subdir.lower()]
    if not matches:
      raise FileNotFoundError(f'{root}: expected a sub-folder {subdir!r} with '
                              f'the {dataset} data.')
    root = os.path.join(root, matches[0])
  _, entries = find_videos(dataset, root)
  return entries


def prefixed(entries: Iterable[VideoEntry], prefix: str) -> list[VideoEntry]:
  """Entries with `<prefix>_` before the subject (MEGC 2019 composite)."""
  return [dataclasses.replace(e, subject=f'{prefix}_{e.subject}') for e in entries]
