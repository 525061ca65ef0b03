"""Raw micro-expression layouts and class sets: which videos a folder holds.

Two kinds of raw folder are read (see docs/DATA.md):

* the official MOL layout, made by hand: `<root>/<emotion>/<video>/<frames>`,
  subject = the video name before its first '_' ('01_EP19_05f' -> '01');
* the layouts the owners ship: CASME II (`CASME2_RAW_selected/sub<NN>/
  <Filename>/img<N>.jpg` + `CASME2-coding-*.xlsx`), SAMM (`SAMM/<subject>/
  <Filename>/<subject>_<N>.jpg` + `SAMM_Micro_FACS_Codes_v2.xlsx`, header on
  the 14th row), SMIC-HS (`HS/<subject>/micro/<emotion>/<clip>/
  image<N>.jpg`), CAS(ME)^3 Part A (`<Subject>/<task>/color/<N>.jpg` +
  `cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx`: several micro-expressions
  per task video, each a frame range), 4DME (`gray_micro/<sub_ID>/
  <fold_name>/` + `4DME_Labelling_Micro_release v1.xlsx`) and MMEW
  (`<subject>/<emotion>/<sample>/<N>.jpg` or `Micro_Expression/<emotion>/
  <sample>/`, optionally + `MMEW_Micro_Exp.xlsx`).

`mol_jax.data.builder.MicroExpressionBuilder` turns the `VideoEntry`s listed
here into one TFDS example per official 8-frame clip.
"""

from __future__ import annotations

import collections
import dataclasses
import glob
import os
import re
from typing import Callable, Iterable, Sequence

import openpyxl

from mol_jax.data import preprocess

# Class sets, in label order (MOL / MEGC 2019).
CASME2_5 = ('surprise', 'happiness', 'disgust', 'repression', 'others')
SAMM_5 = ('surprise', 'happiness', 'anger', 'contempt', 'others')
THREE_CLASS = ('surprise', 'positive', 'negative')
# CAS(ME)^3 Part A: the 3 classes plus others; its own 7 emotions.
CASME3_4 = THREE_CLASS + ('others',)
CASME3_7 = ('surprise', 'happiness', 'disgust', 'fear', 'anger', 'sadness',
            'others')
# 4DME's five emotion categories: the 3 classes, then repression, others.
FOURDME_5 = THREE_CLASS + ('repression', 'others')
# MMEW's seven micro-expression classes (its seventh is 'others' in the
# sheet, 'repression' as a folder: `_EMOTION_ALIASES`).
MMEW_7 = CASME3_7

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

  An emotion that is itself a class keeps its name. A set that holds the
  valence classes 'positive' or 'negative' (THREE_CLASS, CASME3_4,
  FOURDME_5) takes the other emotions through the MEGC 2019 grouping
  (happiness -> positive; disgust, repression, anger, contempt, fear,
  sadness -> negative) when their group is in the set; anything else is
  excluded.

  Raises:
    KeyError: the emotion is not a known name.
  """
  emotion = normalise_emotion(name)
  if emotion not in KNOWN_EMOTIONS:
    raise KeyError(emotion)
  if emotion in classes:
    return emotion
  if {'positive', 'negative'} & set(classes):
    group = _THREE_CLASS_MAP.get(emotion)
    return group if group in classes else None
  return None


@dataclasses.dataclass(frozen=True)
class VideoEntry:
  """One raw video: its frame folder and what is known about it.

  Attributes:
    folder: the frame folder.
    subject: the subject id (the split).
    video_id: a name unique in the dataset.
    emotion: the raw emotion name (sheet cell or folder name).
    onset, offset: for a micro-expression inside a longer video (CAS(ME)^3),
      the file numbers of its first and last frame; None: the whole folder.
    skip_reason, skip_detail: set when the listing already knows that no
      clip can be built (a `preprocess` skip key, e.g. AMBIGUOUS_LABEL or
      INVALID_RANGE, and why); the builder counts it and goes on.
  """
  folder: str
  subject: str
  video_id: str
  emotion: str
  onset: int | None = None
  offset: int | None = None
  skip_reason: str | None = None
  skip_detail: str = ''


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


def _nocase(pattern: str) -> str:
  """A glob pattern that matches whatever the case of its letters."""
  return ''.join(f'[{c.lower()}{c.upper()}]' if c.isalpha() else c
                 for c in pattern)


def _loose(name: str) -> str:
  """A folder name as compared when the exact one is absent: case, dots and
  leading zeros ignored ('spNO.07' ~ 'spNO7', 'J' ~ 'j', 'S01' ~ 's1')."""
  name = name.strip().lower().replace('.', '')
  return re.sub(r'\d+', lambda m: str(int(m.group())), name)


def _child(folder: str, name: str) -> str:
  """`folder/name`, else the one sub-folder whose name matches it loosely.

  The sheets and the folders of one release do not always spell a name
  alike (CAS(ME)^3 'J' for the folder 'j', 'spNO210' beside 'spNO.210').
  Without a unique match the exact path is returned, and the missing folder
  is reported when the video is read.
  """
  exact = os.path.join(folder, name)
  if os.path.isdir(exact) or not os.path.isdir(folder):
    return exact
  matches = [n for n in _subdirs(folder) if _loose(n) == _loose(name)]
  return os.path.join(folder, matches[0]) if len(matches) == 1 else exact


def _split_name(subject: str) -> str:
  """A subject id as a TFDS split name: letters, digits, _ ('spNO.1' -> 'spNO1')."""
  return re.sub(r'\W+', '', subject)


def _frame_cell(value: object) -> int | None:
  """A frame-number cell as an int; None when it holds no whole number."""
  if value is None or isinstance(value, bool):
    return None
  try:
    number = float(_cell(value))
  except ValueError:
    return None
  return int(number) if number.is_integer() else None


def _blank(*values: object) -> bool:
  return any(v is None or _cell(v) == '' for v in values)


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


# CAS(ME)^3 Part A cells that the v2 label sheet gets wrong and the owners'
# full file (`CAS(ME)3_part_A_v2.xls`, sheet "AU+Emotion") gives, keyed by
# (subject, task, column, value in the label sheet) rather than by row, so
# that another version of the sheet cannot shift them. Several values: the
# rows with that key, in sheet order. A value is used only when the row's
# onset <= apex <= offset holds after it (docs/DATA.md).
_CASME3_FIXES = {
    ('spNO.216', 'd', 'onset', 3647): (2647,),
    ('spNO.40', 'e', 'offset', 0): (1845, 2403),
}


def _casme3_frames(root: str) -> str:
  """The folder that holds Part A's `<Subject>/` folders."""
  return (_find(root, [_nocase('part_A_split/part_A'), _nocase('part_A')], 'dir')
          or root)


def scan_casme3_release(root: str) -> list[VideoEntry]:
  """CAS(ME)^3 Part A: `<Subject>/<task>/color/<N>.jpg` + the JpgIndex label sheet.

  Each sheet row is one micro-expression inside a task video: its entry
  reads the task's `color/` folder, frames numbered Onset..Offset. Repeats
  of a (subject, task) get the suffixes 2, 3, ... in sheet order, as MEB
  names them (`spNO1_e`, `spNO1_e2`, ...); the task letter is read in lower
  case ('J' is the folder 'j').
  """
  sheet = _find(root, [_nocase('cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx'),
                       _nocase('cas(me)3_part_A_ME_label_JpgIndex*.xlsx')], 'file')
  if sheet is None:
    raise FileNotFoundError(
        f'{root}: CAS(ME)^3 Part A needs its label sheet '
        'cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx beside the frames (the '
        'labels are in it, not in the folder names).')
  frames = _casme3_frames(root)
  name = os.path.basename(sheet)
  fixes = {(_loose(s), t, c, v): list(values)
           for (s, t, c, v), values in _CASME3_FIXES.items()}
  seen = collections.Counter()
  entries = []
  for row in read_sheet(sheet, ['Subject', 'Filename', 'Onset', 'Offset', 'emotion']):
    if _blank(row['subject'], row['filename']):
      continue  # Not a micro-expression (e.g. a totals line).
    sheet_subject = _cell(row['subject'])
    task = _cell(row['filename']).lower()
    subject = _split_name(sheet_subject)
    seen[subject, task] += 1
    repeat = seen[subject, task]
    video_id = f'{subject}_{task}' + (str(repeat) if repeat > 1 else '')
    folder = os.path.join(_child(_child(frames, sheet_subject), task), 'color')
    where = f'{name}: {sheet_subject} {_cell(row["filename"])} ({video_id})'
    cells = {c: _frame_cell(row.get(c)) for c in ('onset', 'apex', 'offset')}
    entry = VideoEntry(folder, subject, video_id, _cell(row['emotion']),
                       cells['onset'], cells['offset'])
    bad = [c for c in ('onset', 'offset') if cells[c] is None]
    if bad:
      entries.append(dataclasses.replace(
          entry, skip_reason=preprocess.INVALID_RANGE,
          skip_detail=f'{where}: {bad[0].capitalize()} cell '
                      f'{row.get(bad[0])!r} is not a frame number'))
      continue
    fixed = dict(cells)
    for column in ('onset', 'offset'):
      values = fixes.get((_loose(sheet_subject), task, column, cells[column]))
      if values:
        fixed[column] = values.pop(0)
    if fixed != cells:
      apex = fixed['apex'] if fixed['apex'] is not None else fixed['onset']
      if fixed['onset'] <= apex <= fixed['offset']:
        entry = dataclasses.replace(entry, onset=fixed['onset'], offset=fixed['offset'])
      else:
        entry = dataclasses.replace(
            entry, skip_reason=preprocess.INVALID_RANGE,
            skip_detail=f'{where}: onset/apex/offset {cells["onset"]}/'
                        f'{cells["apex"]}/{cells["offset"]} in the sheet; with '
                        f"the owners' full-file correction (onset "
                        f"{fixed['onset']}, offset {fixed['offset']}) onset <= "
                        'apex <= offset still fails: check this row')
    entries.append(entry)
  return entries


# Separators between the categories of one 4DME Emotion cell
# ('Surprise+Positive', 'fear/disgust').
_SEVERAL = re.compile(r'\s*(?:[+/,;&|]|\band\b)\s*', re.IGNORECASE)


def scan_fourdme_release(root: str) -> list[VideoEntry]:
  """4DME's 2-D gray frames: `gray_micro/<sub_ID>/<fold_name>/` + the release sheet.

  The label is the sheet's Emotion; a cell that names several categories
  is skipped as AMBIGUOUS_LABEL. Each folder is one clip, read whole (how
  its frames are numbered is not known, so Onset/Offset are not applied).
  The video id is the fold name, prefixed with the subject unless it
  starts with it.
  """
  sheet = _find(root, [_nocase('4DME_Labelling_Micro_release*.xlsx')], 'file')
  frames = _find(root, [_nocase('gray_micro')], 'dir')
  if sheet is None or frames is None:
    raise FileNotFoundError(
        f'{root}: 4DME needs "4DME_Labelling_Micro_release v1.xlsx" and the '
        f'gray_micro/ folder (found sheet={sheet}, frames={frames}).')
  name = os.path.basename(sheet)
  entries = []
  for row in read_sheet(sheet, ['sub_ID', 'fold_name', 'Emotion']):
    if _blank(row['sub_id'], row['fold_name']):
      continue  # Not a clip (e.g. a totals line).
    sheet_subject, fold = _cell(row['sub_id']), _cell(row['fold_name'])
    subject = _split_name(sheet_subject)
    emotion = _cell(row['emotion']) if row['emotion'] is not None else ''
    # The fold names seen carry their subject ('S13_1st_001_01_1').
    prefixed = re.match(re.escape(subject) + r'(?![A-Za-z0-9])', fold, re.IGNORECASE)
    video_id = fold if prefixed else f'{subject}_{fold}'
    entry = VideoEntry(_child(_child(frames, sheet_subject), fold), subject,
                       video_id, emotion)
    categories = {normalise_emotion(c) for c in _SEVERAL.split(emotion) if c}
    if len(categories) > 1:
      entry = dataclasses.replace(
          entry, skip_reason=preprocess.AMBIGUOUS_LABEL,
          skip_detail=f'{name}: {sheet_subject} {fold}: Emotion {emotion!r} '
                      f'names {len(categories)} categories')
    elif categories:
      entry = dataclasses.replace(entry, emotion=categories.pop())
    entries.append(entry)
  return entries


def _is_emotion(name: str) -> bool:
  return normalise_emotion(name) in KNOWN_EMOTIONS


def _mmew_frames(root: str) -> str:
  return _find(root, [_nocase('Micro_Expression')], 'dir') or root


def _mmew_samples(frames: str) -> list[tuple[str | None, str, str]]:
  """(subject folder or None, emotion folder, sample folder) of each MMEW sample.

  Either tree: the owners' `<subject>/<emotion>/<sample>/` or MEB's
  `<emotion>/<sample>/` (no subject level), told apart by whether the top
  folders are emotion names.
  """
  top = _subdirs(frames)
  if any(_is_emotion(n) for n in top):
    return [(None, e, os.path.join(frames, e, v))
            for e in top for v in _subdirs(os.path.join(frames, e))]
  return [(s, e, os.path.join(frames, s, e, v))
          for s in top for e in _subdirs(os.path.join(frames, s))
          for v in _subdirs(os.path.join(frames, s, e))]


def _mmew_owners_tree(root: str) -> bool:
  """Whether `root` holds the owners' `<subject>/<emotion>/<sample>/` tree."""
  return any(_is_emotion(e) for s in _subdirs(root) if not _is_emotion(s)
             for e in _subdirs(os.path.join(root, s)))


def scan_mmew_release(root: str) -> list[VideoEntry]:
  """MMEW's micro-expressions, in the owners' or MEB's tree, sheet optional.

  With `MMEW_Micro_Exp.xlsx` the sheet's rows are the samples (label:
  Estimated Emotion), each found by its Filename in the tree; without it
  every sample folder is one, labelled by its emotion folder. The subject
  is the sheet's Subject, else the subject folder, else the sample name
  before its first '-' or '_' ('S03-01-002' -> 'S03'). Folders are read
  whole.
  """
  frames = _mmew_frames(root)
  samples = _mmew_samples(frames)
  sheet = _find(root, [_nocase('MMEW_Micro_Exp*.xlsx')], 'file')
  if sheet is None:
    return [VideoEntry(path, _split_name(subject or re.split(r'[-_]', os.path.basename(path))[0]),
                       os.path.basename(path), emotion)
            for subject, emotion, path in samples]
  by_name = collections.defaultdict(list)
  for subject, emotion, path in samples:
    by_name[_loose(os.path.basename(path))].append((subject, path))
  with_subjects = any(subject is not None for subject, _, _ in samples)
  entries = []
  for row in read_sheet(sheet, ['Subject', 'Filename', 'Estimated Emotion']):
    if _blank(row['subject'], row['filename']):
      continue  # Not a sample (e.g. a totals line).
    sheet_subject, filename = _cell(row['subject']), _cell(row['filename'])
    emotion = _cell(row['estimated emotion'])
    hits = by_name.get(_loose(filename), [])
    if len(hits) > 1:  # The same name under two subjects: take the row's.
      hits = [h for h in hits if h[0] is not None
              and _loose(h[0]) == _loose(sheet_subject)] or hits
    if hits:
      folder = hits[0][1]
    elif with_subjects:
      folder = os.path.join(frames, sheet_subject, emotion, filename)
    else:
      folder = os.path.join(frames, emotion, filename)
    entries.append(VideoEntry(folder, _split_name(sheet_subject), filename, emotion))
  return entries


def _has(*patterns: str) -> Callable[[str], bool]:
  """A release detector: a file or folder matching one of `patterns`."""
  def detect(root: str) -> bool:
    return any(_find(root, [p], 'file') or _find(root, [p], 'dir')
               for p in patterns)
  return detect


def _smic_release(root: str) -> bool:
  return _has('HS')(root) or any(os.path.isdir(os.path.join(root, s, 'micro'))
                                 for s in _subdirs(root))


def _casme3_release(root: str) -> bool:
  # The frame tree alone is detected too, so that a missing sheet is named.
  frames = _casme3_frames(root)
  return (_has(_nocase('cas(me)3_part_A*.xlsx'))(root) or frames != root
          or any(re.fullmatch(r'spNO\.?\d+', n, re.IGNORECASE) for n in _subdirs(root)))


def _mmew_release(root: str) -> bool:
  return (_has(_nocase('MMEW_Micro_Exp*.xlsx'), _nocase('Micro_Expression'))(root)
          or _mmew_owners_tree(root))


# Per dataset: the release reader and the test that tells a release from
# the official MOL layout.
_RELEASE_SCANNERS: dict[str, tuple[Callable[[str], list[VideoEntry]],
                                   Callable[[str], bool]]] = {
    'casme2': (scan_casme2_release, _has('CASME2*coding*.xlsx')),
    'samm': (scan_samm_release, _has('SAMM_Micro_FACS_Codes*.xlsx')),
    'smic': (scan_smic_release, _smic_release),
    'casme3': (scan_casme3_release, _casme3_release),
    'fourdme': (scan_fourdme_release, _has(_nocase('4DME_Labelling_Micro_release*.xlsx'),
                                           _nocase('gray_micro'))),
    'mmew': (scan_mmew_release, _mmew_release),
}

# A dataset's own names for an emotion, in every layout. MMEW's seventh
# class is 'others' in its sheet and `repression/` in the owners' folder
# list; MEB renames the label to reach the folder.
_EMOTION_ALIASES = {'mmew': {'repression': 'others'}}


def find_videos(dataset: str, root: str) -> tuple[str, list[VideoEntry]]:
  """Detects the layout of `root` and lists its videos.

  Args:
    dataset: 'casme2', 'samm', 'smic', 'casme3', 'fourdme' or 'mmew'.
    root: the folder received (manual_dir).

  Returns:
    ('release' or 'mol', entries).

  Raises:
    FileNotFoundError: `root` is missing or holds no video, naming it.
  """
  if not os.path.isdir(root):
    raise FileNotFoundError(f'{root} does not exist; pass --manual_dir=<the '
                            f'folder that holds the {dataset} data>.')
  scanner, is_release = _RELEASE_SCANNERS[dataset]
  release = is_release(root)
  layout = 'release' if release else 'mol'
  entries = scanner(root) if release else scan_mol_layout(root)
  if not entries:
    raise FileNotFoundError(
        f'{root}: no videos found for {dataset}. Expected the official MOL '
        'layout <root>/<emotion>/<video>/<frames> or the release layout '
        '(see docs/DATA.md).')
  aliases = _EMOTION_ALIASES.get(dataset, {})
  entries = [dataclasses.replace(e, emotion=aliases[normalise_emotion(e.emotion)])
             if normalise_emotion(e.emotion) in aliases else e for e in entries]
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
