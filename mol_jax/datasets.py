"""Raw micro-expression layouts, class sets and the shared TFDS builder.

Two kinds of raw folder are read (see docs/DATA.md):

* the official MOL layout, made by hand: `<root>/<emotion>/<video>/<frames>`,
  subject = the video name before its first '_' ('01_EP19_05f' -> '01');
* the layouts the owners ship: CASME II (`CASME2_RAW_selected/sub<NN>/
  <Filename>/img<N>.jpg` + `CASME2-coding-*.xlsx`), SAMM (`SAMM/<subject>/
  <Filename>/<subject>_<N>.jpg` + `SAMM_Micro_FACS_Codes_v2.xlsx`, header on
  the 14th row) and SMIC-HS (`HS/<subject>/micro/<emotion>/<clip>/
  image<N>.jpg`).

`MicroExpressionBuilder` turns either into one TFDS example per official
8-frame clip, one split per subject, through `mol_jax.preprocess`.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import glob
import importlib.util
import os
import re
import weakref
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import tensorflow_datasets as tfds

from mol_jax import preprocess

CLIP_LENGTH = preprocess.CLIP_LENGTH
SIZE = 144

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

# The project's builders: tfds_builders/<name>/<name>_dataset_builder.py.
BUILDERS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            'tfds_builders')

# Environment knobs read at build time (set by `mol_jax.tfds_build` flags).
ENV_NUM_WORKERS = 'MOL_JAX_NUM_WORKERS'
ENV_UPSAMPLE = 'MOL_JAX_UPSAMPLE'


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


# ----------------------------------------------------------------------------
# TFDS builder.


# Per-clip configs are versioned apart: their content changed in 1.1.0, and
# per-frame sets (hours of pre-processing for real data) did not.
PER_CLIP_VERSION = '1.1.0'
PER_CLIP_RELEASE_NOTES = {
    '1.0.0': 'Initial release: one alignment matrix from the mean landmarks '
             'of the 8 frames.',
    '1.1.0': 'One alignment matrix from the first (onset) frame, so that '
             'the expression cannot change the clip\'s scale or position.',
}


# Registered configs continue the per-clip line: `synthetic_me/demo` moved
# from per-clip alignment to registration in 1.2.0.
REGISTERED_VERSION = '1.2.0'
REGISTERED_RELEASE_NOTES = dict(PER_CLIP_RELEASE_NOTES, **{
    '1.2.0': 'Per-clip alignment, then every clip registered onto one '
             'reference face shape from its onset landmarks '
             '(mol_jax.registration).',
})


def _versioning(align: str) -> dict[str, Any]:
  if align == 'per_clip':
    return {'version': PER_CLIP_VERSION, 'release_notes': PER_CLIP_RELEASE_NOTES}
  if align == 'registered':
    return {'version': REGISTERED_VERSION, 'release_notes': REGISTERED_RELEASE_NOTES}
  return {'version': '1.0.0'}


class MicroExpressionConfig(tfds.core.BuilderConfig):
  """Class set and pre-processing of one builder config."""

  def __init__(self, *, classes: Sequence[str], align: str = 'per_frame',
               max_clips_per_video: int | None = None, **kwargs):
    super().__init__(**_versioning(align), **kwargs)
    self.classes = tuple(classes)
    self.align = align
    self.max_clips_per_video = max_clips_per_video


def class_configs(class_sets: dict[str, Sequence[str]]
                  ) -> list[MicroExpressionConfig]:
  """One config per class set and alignment mode ('<set>', '<set>_per_clip', '<set>_registered')."""
  configs = []
  for name, classes in class_sets.items():
    for align in preprocess.ALIGN_MODES:
      suffix = '' if align == 'per_frame' else '_' + align
      configs.append(MicroExpressionConfig(
          name=name + suffix, classes=classes, align=align,
          description=(f'{len(classes)} classes {list(classes)}; {align} '
                       'alignment' + (' (official)' if not suffix else ''))))
  return configs


def features(classes: Sequence[str]) -> tfds.features.FeaturesDict:
  """The features of every micro-expression builder."""
  return tfds.features.FeaturesDict({
      'video': tfds.features.Tensor(shape=(CLIP_LENGTH, SIZE, SIZE, 1),
                                    dtype=np.uint8),
      'flow': tfds.features.Tensor(shape=(CLIP_LENGTH - 1, SIZE, SIZE, 2),
                                   dtype=np.float16),
      'landmarks': tfds.features.Tensor(shape=(CLIP_LENGTH, 68, 2),
                                        dtype=np.float32),
      'label': tfds.features.ClassLabel(names=list(classes)),
      'subject': tfds.features.Text(),
      'video_id': tfds.features.Text(),
      'frame_indices': tfds.features.Tensor(shape=(CLIP_LENGTH,), dtype=np.int32),
  })


def _env_int(name: str, default: int | None) -> int | None:
  value = os.environ.get(name)
  if value in (None, ''):
    return default
  try:
    return int(value)
  except ValueError:
    raise ValueError(f'${name} must be an integer, got {value!r}.') from None


class MicroExpressionBuilder(tfds.core.GeneratorBasedBuilder,
                             skip_registration=True):
  """Shared builder: raw videos -> one example per clip, one split per subject.

  Subclasses set `BUILDER_CONFIGS` (of `MicroExpressionConfig`) and
  implement `_videos(dl_manager)` returning `VideoEntry`s.
  """

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release.'}
  HOMEPAGE = ''

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        features=features(self.builder_config.classes),
        homepage=self.HOMEPAGE or None,
    )

  def _videos(self, dl_manager: tfds.download.DownloadManager
              ) -> list[VideoEntry]:
    raise NotImplementedError

  def _options(self) -> preprocess.PreprocessOptions:
    return preprocess.PreprocessOptions(
        align=self.builder_config.align,
        upsample=_env_int(ENV_UPSAMPLE, 1),
        max_clips_per_video=self.builder_config.max_clips_per_video)

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    entries = self._videos(dl_manager)
    options = self._options()
    classes = self.builder_config.classes
    self._summary = preprocess.SkipSummary(f'{self.name}/{self.builder_config.name}')
    by_subject: dict[str, list[tuple[preprocess.ClipJob, VideoEntry, str]]] = (
        collections.defaultdict(list))
    seen_ids = set()
    for entry in entries:
      try:
        label = map_emotion(entry.emotion, classes)
      except KeyError:
        self._summary.skip(preprocess.UNKNOWN_LABEL, entry.folder,
                           f'emotion {entry.emotion!r} is not one of '
                           f'{sorted(KNOWN_EMOTIONS)}')
        continue
      if label is None:
        self._summary.skip(preprocess.EXCLUDED_LABEL, entry.folder,
                           f'{entry.emotion!r} is not in {list(classes)}')
        continue
      if entry.video_id in seen_ids:
        raise ValueError(f'{entry.folder}: video id {entry.video_id!r} appears '
                         'twice; every video needs a unique name.')
      seen_ids.add(entry.video_id)
      try:
        jobs = preprocess.plan_video(entry.folder, entry.video_id, options)
      except preprocess.SkipClip as e:
        self._summary.skip(e.reason, e.path, e.detail)
        continue
      by_subject[entry.subject].extend((job, entry, label) for job in jobs)
    if not by_subject:
      self._summary.log()
      raise ValueError(f'{self.name}: no clip can be built from the raw data '
                       f'({len(entries)} video(s) listed).\n'
                       + self._summary.report())
    for subject in by_subject:
      if not re.fullmatch(r'\w+', subject):
        raise ValueError(f'Subject {subject!r} cannot name a TFDS split; '
                         'rename the videos so that the subject part is '
                         'letters, digits or _.')
    total = sum(len(v) for v in by_subject.values())
    self._processor = preprocess.ClipProcessor(
        options, num_workers=_env_int(ENV_NUM_WORKERS, None),
        progress=f'{self.name}/{self.builder_config.name}', total=total)
    weakref.finalize(self, self._processor.close)
    self._splits_left = len(by_subject)
    return {subject: self._generate_examples(by_subject[subject])
            for subject in sorted(by_subject)}

  def _generate_examples(self, items: Sequence[tuple[preprocess.ClipJob,
                                                     VideoEntry, str]]
                         ) -> Iterator[tuple[str, dict[str, object]]]:
    by_key = {job.key: (entry, label) for job, entry, label in items}
    try:
      for job, result in self._processor.run(job for job, _, _ in items):
        entry, label = by_key[job.key]
        if isinstance(result, preprocess.SkipClip):
          self._summary.skip(result.reason, result.path, result.detail)
          continue
        self._summary.clips_built += 1
        self._summary.reused_boxes += result.reused_boxes
        yield job.key, {
            'video': result.video,
            'flow': result.flow,
            'landmarks': result.landmarks,
            'label': label,
            'subject': entry.subject,
            'video_id': entry.video_id,
            'frame_indices': result.frame_indices,
        }
    finally:
      self._splits_left -= 1
      if self._splits_left == 0:
        self._processor.close()
        self._summary.log()


def release_or_mol_videos(dataset: str, dl_manager: tfds.download.DownloadManager,
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


@functools.lru_cache(maxsize=32)
def builder_config(dataset: str, builders_dir: str | None = None
                   ) -> MicroExpressionConfig | None:
  """The config of a project builder, e.g. 'synthetic_me/demo' or 'casme2/5class'.

  Reads `tfds_builders/<name>/<name>_dataset_builder.py` without registering
  its builder (so it works beside a registered copy), for the pre-processing
  a dataset was built with (`align`, `max_clips_per_video`, `classes`, and
  `generator` for synthetic_me).

  Returns:
    the config, or None when the builder file or the config does not exist.
  """
  name, _, config_name = dataset.partition('/')
  path = os.path.join(builders_dir or BUILDERS_DIR, name, f'{name}_dataset_builder.py')
  if not name or not os.path.isfile(path):
    return None
  # TFDS names a `Builder` class after its module, '<name>_dataset_builder'.
  spec = importlib.util.spec_from_file_location(f'{name}_dataset_builder', path)
  module = importlib.util.module_from_spec(spec)
  with tfds.core.registered.skip_registration():
    spec.loader.exec_module(module)
  configs = module.Builder.BUILDER_CONFIGS
  if not config_name:
    return configs[0] if configs else None
  return next((c for c in configs if c.name == config_name), None)
