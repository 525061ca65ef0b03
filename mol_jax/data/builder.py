"""The TFDS builder shared by every micro-expression set.

`MicroExpressionBuilder` turns the raw videos a subclass lists
(`mol_jax.data.layouts.VideoEntry`) into one example per official 8-frame
clip, one split per subject, through `mol_jax.data.preprocess`: in a process
pool, or on Apache Beam's workers when the build is given Beam options
(`mol_jax.data.beam_build`). The builders themselves are
`mol_jax.data.builders.<name>`; `tfds_builders/<name>/` holds the file
`tfds build` finds, which imports them. What a clip's record holds, and how a
built clip fills it, is `mol_jax.data.records`, shared with the Beam path.
"""

from __future__ import annotations

import collections
import importlib
import inspect
import os
import pathlib
import re
import types
import weakref
from typing import Any, Callable, Iterator, Sequence

from absl import logging
from etils import epath
import tensorflow_datasets as tfds

from mol_jax.data import layouts
from mol_jax.data import preprocess
from mol_jax.data import records

# Environment knobs read at build time (set by `mol_jax.tfds_build` flags).
ENV_NUM_WORKERS = 'MOL_JAX_NUM_WORKERS'
ENV_UPSAMPLE = 'MOL_JAX_UPSAMPLE'
# The file format of a build that names none (default array_record, which
# training reads at random; TFDS's own builder tests read through tf.data,
# which needs tfrecord: tfds_builders/conftest.py sets it).
ENV_FILE_FORMAT = 'MOL_JAX_FILE_FORMAT'

# The project's builders, `mol_jax.data.builders.<name>`.
BUILDER_NAMES = ('casme2', 'samm', 'smic', 'megc2019', 'casme3', 'fourdme',
                 'mmew', 'synthetic_me')

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
REGISTERED_VERSION = '1.3.0'
REGISTERED_RELEASE_NOTES = dict(PER_CLIP_RELEASE_NOTES, **{
    '1.2.0': 'Per-clip alignment, then every clip registered onto one '
             'reference face shape from its onset landmarks '
             '(mol_jax.data.registration).',
    '1.3.0': 'Registration on stable landmarks (no eyelids or inner lips) by a '
             'warp that cannot fold: clips are no longer skipped as '
             'unregistrable_face unless their landmarks are not numbers.',
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
               max_clips_per_video: int | None = None,
               stretch_short_videos: bool = False, **kwargs):
    # A builder may version its configs itself (`version`, `release_notes`).
    super().__init__(**{**_versioning(align), **kwargs})
    self.classes = tuple(classes)
    self.align = align
    self.max_clips_per_video = max_clips_per_video
    self.stretch_short_videos = stretch_short_videos


def class_configs(class_sets: dict[str, Sequence[str]], **options: Any
                  ) -> list[MicroExpressionConfig]:
  """One config per class set and alignment mode ('<set>', '<set>_per_clip',
  '<set>_registered'); `options` are `MicroExpressionConfig`'s (e.g.
  stretch_short_videos=True), the same for all."""
  configs = []
  for name, classes in class_sets.items():
    for align in preprocess.ALIGN_MODES:
      suffix = '' if align == 'per_frame' else '_' + align
      configs.append(MicroExpressionConfig(
          name=name + suffix, classes=classes, align=align, **options,
          description=(f'{len(classes)} classes {list(classes)}; {align} '
                       'alignment' + (' (official)' if not suffix else ''))))
  return configs


def _env_int(name: str, default: int | None) -> int | None:
  value = os.environ.get(name)
  if value in (None, ''):
    return default
  try:
    return int(value)
  except ValueError:
    raise ValueError(f'${name} must be an integer, got {value!r}.') from None


def remove_incomplete_builds(version_dir: epath.Path) -> list[str]:
  """Removes the `incomplete.XXXXXX_<version>` folders beside `version_dir`
  (TFDS's temporary build folders); returns their names."""
  version_dir = epath.Path(version_dir)
  parent = version_dir.parent
  if not parent.exists():
    return []
  pattern = re.compile(r'incomplete\.[A-Z0-9]{6}_' + re.escape(version_dir.name))
  removed = []
  for path in parent.iterdir():
    if pattern.fullmatch(path.name) and path.is_dir():
      size = sum(f.stat().st_size for f in pathlib.Path(os.fspath(path)).rglob('*')
                 if f.is_file())
      logging.warning('removing %s (%.1f MB), left by a build that did not finish', path,
                      size / 1e6)
      path.rmtree()
      removed.append(path.name)
  return removed


class MicroExpressionBuilder(tfds.core.GeneratorBasedBuilder,
                             skip_registration=True):
  """Shared builder: raw videos -> one example per clip, one split per subject.

  Subclasses set `BUILDER_CONFIGS` (of `MicroExpressionConfig`) and
  implement `_videos(dl_manager)` returning `layouts.VideoEntry`s.
  """

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release.'}
  HOMEPAGE = ''

  # Subclasses set `name` (TFDS would name a `Builder` class after its
  # module). Their README and citation lie beside the packaged builder
  # (`mol_jax.data.builders.<name>`); TFDS would look one package above a
  # package's `__init__`, or beside a `tfds_builders/` subclass.
  @classmethod
  def _get_pkg_dir_path(cls):
    packaged = next((c for c in cls.__mro__
                     if c.__module__.startswith('mol_jax.data.builders.')), cls)
    return epath.Path(inspect.getfile(packaged)).parent

  def __init__(self, *, file_format: str | None = None, **kwargs):
    self._file_format_given = file_format is not None
    self._download_config: tfds.download.DownloadConfig | None = None
    super().__init__(file_format=file_format, **kwargs)

  def download_and_prepare(self, **kwargs) -> None:
    """TFDS's, after removing what killed builds of this version left, and
    in array_record unless a file format was asked for.

    TFDS builds into `incomplete.XXXXXX_<version>/` beside the version folder
    and renames it when done; a build killed before that (Ctrl-C twice, a
    lost machine, SIGKILL) leaves the folder, and no later build removes it
    (gigabytes on a real dataset). Two builds of one config into one
    data_dir at the same time are not supported, so any such folder is dead.

    TFDS's own default format is tfrecord, which `tfds.data_source` (and so
    training) cannot read at random; `tfds build` without `--file_format`
    therefore writes array_record here.

    Given a Beam runner or options (`download_config`), the clips are
    pre-processed on Beam (`_generate_examples`).
    """
    self._download_config = kwargs.get('download_config')
    if not self.is_prepared():
      remove_incomplete_builds(epath.Path(self.data_dir))
      if not self._file_format_given and not kwargs.get('file_format'):
        kwargs['file_format'] = os.environ.get(ENV_FILE_FORMAT) or 'array_record'
    super().download_and_prepare(**kwargs)

  @classmethod
  def training_config_file(cls) -> str | None:
    """The file in `configs/` that trains on this builder's first config."""
    return f'{cls.name}.py'

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        features=records.features(self.builder_config.classes, self._extra_features()),
        homepage=self.HOMEPAGE or None,
    )

  def _videos(self, dl_manager: tfds.download.DownloadManager
              ) -> list[layouts.VideoEntry]:
    raise NotImplementedError

  def _extra_features(self) -> dict[str, Any]:
    """Features of this builder's own, beside the shared ones (filled by `_annotator`)."""
    return {}

  def _annotator(self) -> Callable[[preprocess.ClipJob, preprocess.Clip], dict] | None:
    """A picklable function (job, clip) -> this builder's extra features,
    run beside each clip's pre-processing; None when there are none."""
    return None

  def _options(self) -> preprocess.PreprocessOptions:
    return preprocess.PreprocessOptions(
        align=self.builder_config.align,
        upsample=_env_int(ENV_UPSAMPLE, 1),
        max_clips_per_video=self.builder_config.max_clips_per_video,
        stretch_short_videos=self.builder_config.stretch_short_videos)

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    entries = self._videos(dl_manager)
    options = self._options()
    classes = self.builder_config.classes
    self._summary = preprocess.SkipSummary(f'{self.name}/{self.builder_config.name}')
    by_subject: dict[str, list[records.Item]] = collections.defaultdict(list)
    seen_ids = set()
    for entry in entries:
      if entry.skip_reason is not None:  # Known from the listing already.
        self._summary.skip(entry.skip_reason, entry.folder, entry.skip_detail)
        continue
      try:
        label = layouts.map_emotion(entry.emotion, classes)
      except KeyError:
        self._summary.skip(preprocess.UNKNOWN_LABEL, entry.folder,
                           f'emotion {entry.emotion!r} is not one of '
                           f'{sorted(layouts.KNOWN_EMOTIONS)}')
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
        jobs = preprocess.plan_video(entry.folder, entry.video_id, options,
                                     onset=entry.onset, offset=entry.offset)
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
    if not self._on_beam():  # On Beam, its workers pre-process.
      self._processor = preprocess.ClipProcessor(
          options, num_workers=_env_int(ENV_NUM_WORKERS, None),
          progress=f'{self.name}/{self.builder_config.name}', total=total,
          annotate=self._annotator())
      weakref.finalize(self, self._processor.close)
    self._splits_left = len(by_subject)
    return {subject: self._generate_examples(by_subject[subject])
            for subject in sorted(by_subject)}

  def _on_beam(self) -> bool:
    """Whether this build runs on Beam: it was given a Beam runner or options,
    as TFDS decides when it builds a pipeline (`SplitBuilder.beam_pipeline`)."""
    config = self._download_config
    return config is not None and (config.beam_runner is not None
                                   or config.beam_options is not None)

  def _generate_examples(self, items: Sequence[records.Item]):
    """A split's (key, example)s: a generator, or on Beam a `beam.PTransform`.

    TFDS runs a split on its Beam pipeline when the split's generator is a
    `beam.PTransform` (`SplitBuilder.submit_split_generation`).
    """
    if not self._on_beam():
      return self._generate_here(items)
    cap = self._download_config.max_examples_per_split
    if cap is not None:
      # TFDS caps generators only; here the jobs are capped (a skipped clip
      # then leaves the split one short).
      items = items[:cap]
    return _beam_build().BuildClips(items, self._options(), self._annotator(),
                                 self._summary.name)

  def _process_pipeline_result(self, pipeline_result) -> None:
    """Adds what the Beam workers built and skipped to the summary, and prints it."""
    _beam_build().add_counts(self._summary, pipeline_result)
    self._summary.log()

  def _generate_here(self, items: Sequence[records.Item]) -> Iterator[records.Example]:
    by_key = {item[0].key: item for item in items}
    try:
      for job, result in self._processor.run(job for job, _, _ in items):
        example = records.example_or_skip(by_key[job.key], result, self._summary)
        if example is not None:
          yield example
    finally:
      self._splits_left -= 1
      if self._splits_left == 0:
        self._processor.close()
        self._summary.log()


def _beam_build() -> types.ModuleType:
  """`mol_jax.data.beam_build`, imported on the Beam path only: it imports
  apache_beam, an optional extra that the default build does not need."""
  return importlib.import_module('mol_jax.data.beam_build')


def builder_class(name: str) -> type[MicroExpressionBuilder] | None:
  """The project's builder class called `name` ('casme2', 'synthetic_me', ...), or None."""
  if name not in BUILDER_NAMES:
    return None
  return importlib.import_module(f'mol_jax.data.builders.{name}').Builder


def builder_config(dataset: str) -> MicroExpressionConfig | None:
  """The config of a project builder, e.g. 'synthetic_me/demo' or 'casme2/5class'.

  For the pre-processing a dataset was built with (`align`,
  `max_clips_per_video`, `classes`, and `generator` for synthetic_me).

  Returns:
    the config, or None when there is no such builder or config.
  """
  name, _, config_name = dataset.partition('/')
  cls = builder_class(name)
  if cls is None:
    return None
  configs = cls.BUILDER_CONFIGS
  if not config_name:
    return configs[0] if configs else None
  return next((c for c in configs if c.name == config_name), None)


def dataset_alignment(dataset: str) -> str:
  """The alignment a dataset was built with: its builder config's, else 'per_frame'.

  'casme2/5class_per_clip' -> 'per_clip', 'synthetic_me/demo' ->
  'registered'; a name this package has no builder for is read by its
  suffix ('..._per_clip', '..._registered'); '' -> 'per_frame', the official
  alignment.
  """
  config = builder_config(dataset) if dataset else None
  if config is not None:
    return config.align
  for align in preprocess.ALIGN_MODES:
    if dataset.endswith('_' + align):
      return align
  return 'per_frame'
