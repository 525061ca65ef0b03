"""Tests of the raw layouts, class maps and build planning (mol_jax.datasets)."""

import importlib
import importlib.util
import os
import sys
import types

import numpy as np
import pytest
import tensorflow_datasets as tfds

from mol_jax.data import builder
from mol_jax.data import layouts
from mol_jax.data import preprocess
from mol_jax.data import records

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILDERS = os.path.join(REPO, 'tfds_builders')


def _builder_module(name):
  """The file `tfds build tfds_builders/<name>` loads, loaded the same way: by path."""
  path = os.path.join(BUILDERS, name, f'{name}_dataset_builder.py')
  spec = importlib.util.spec_from_file_location(f'{name}_dataset_builder', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_class_maps():
  assert layouts.map_emotion('Happiness', layouts.THREE_CLASS) == 'positive'
  assert layouts.map_emotion('repression', layouts.THREE_CLASS) == 'negative'
  assert layouts.map_emotion('Other', layouts.THREE_CLASS) is None
  assert layouts.map_emotion('Other', layouts.SAMM_5) == 'others'
  assert layouts.map_emotion('fear', layouts.CASME2_5) is None
  assert layouts.map_emotion('disgust', layouts.SAMM_5) is None
  with pytest.raises(KeyError):
    layouts.map_emotion('tense', layouts.THREE_CLASS)
  # Sets with the valence classes group the fine emotions; a fine emotion
  # that is a class of its own keeps its name.
  assert layouts.map_emotion('sad', layouts.CASME3_4) == 'negative'
  assert layouts.map_emotion('Others', layouts.CASME3_4) == 'others'
  assert layouts.map_emotion('happy', layouts.CASME3_7) == 'happiness'
  assert layouts.map_emotion('anger', layouts.CASME3_7) == 'anger'
  assert layouts.map_emotion('contempt', layouts.CASME3_7) is None
  assert layouts.map_emotion('Repression', layouts.FOURDME_5) == 'repression'
  assert layouts.map_emotion('disgust', layouts.FOURDME_5) == 'negative'
  assert layouts.map_emotion('repression', layouts.THREE_CLASS) == 'negative'


def test_mol_layout_subjects():
  _, entries = layouts.find_videos(
      'samm', os.path.join(BUILDERS, 'samm', 'dummy_data', 'mol'))
  by_id = {e.video_id: e for e in entries}
  assert by_id['006_1_2'].subject == '006'
  assert by_id['006_1_2'].emotion == 'happiness'


def test_release_sheets():
  layout, entries = layouts.find_videos(
      'casme2', os.path.join(BUILDERS, 'casme2', 'dummy_data', 'release'))
  assert layout == 'release'
  e = {x.video_id: x for x in entries}['01_EP01_01']
  assert (e.subject, e.emotion) == ('01', 'happiness')  # Subject 1 -> '01'.
  assert e.folder.endswith(os.path.join('CASME2_RAW_selected', 'sub01', 'EP01_01'))
  # SAMM: 13 free-text rows before the header.
  layout, entries = layouts.find_videos(
      'samm', os.path.join(BUILDERS, 'samm', 'dummy_data', 'release'))
  assert layout == 'release'
  e = {x.video_id: x for x in entries}['007_3_2']
  assert (e.subject, e.emotion) == ('007', 'Other')
  layout, entries = layouts.find_videos(
      'smic', os.path.join(BUILDERS, 'smic', 'dummy_data', 'release'))
  assert layout == 'release'
  assert {(x.subject, x.emotion) for x in entries} >= {('s1', 'negative'),
                                                       ('s2', 'surprise')}


def test_bad_sheet_and_missing_root_name_the_path(tmp_path):
  import openpyxl  # pylint: disable=g-import-not-at-top
  book = openpyxl.Workbook()
  book.active.append(['Name', 'Clip'])
  sheet = tmp_path / 'CASME2-coding-x.xlsx'
  book.save(sheet)
  (tmp_path / 'CASME2_RAW_selected').mkdir()
  with pytest.raises(ValueError, match='CASME2-coding-x.xlsx'):
    layouts.find_videos('casme2', str(tmp_path))
  with pytest.raises(FileNotFoundError, match='nope'):
    layouts.find_videos('smic', str(tmp_path / 'nope'))
  (tmp_path / 'empty').mkdir()
  with pytest.raises(FileNotFoundError, match='no videos'):
    layouts.find_videos('smic', str(tmp_path / 'empty'))


def _plan(name, config, manual_dir, tmp_path):
  module = _builder_module(name)
  builder = module.Builder(config=config, data_dir=str(tmp_path))
  dl_manager = types.SimpleNamespace(manual_dir=manual_dir)
  splits = builder._split_generators(dl_manager)  # pylint: disable=protected-access
  builder._processor.close()  # pylint: disable=protected-access
  return splits, builder._summary  # pylint: disable=protected-access


@pytest.mark.parametrize('layout', ['mol', 'release'])
def test_planning_skips_bad_inputs_with_reasons(layout, tmp_path):
  root = os.path.join(BUILDERS, 'casme2', 'dummy_data', layout)
  splits, summary = _plan('casme2', '5class', root, tmp_path)
  assert sorted(splits) == ['01', '02']
  expected = {preprocess.UNKNOWN_LABEL: 1, preprocess.TOO_FEW_FRAMES: 1,
              preprocess.EMPTY_FOLDER: 1, preprocess.EXCLUDED_LABEL: 1}
  if layout == 'release':
    expected[preprocess.MISSING_FOLDER] = 1  # A sheet row without its folder.
  assert dict(summary.counts) == expected
  report = summary.report()
  assert 'EP07_01' in report and 'too_few_frames: 1' in report


@pytest.mark.parametrize('name, config, layout, splits, expected', [
    ('casme3', '3class', 'release', ['spNO1', 'spNO2', 'spNO40'],
     {preprocess.UNKNOWN_LABEL: 1, preprocess.TOO_FEW_FRAMES: 1,
      preprocess.MISSING_FOLDER: 1, preprocess.INVALID_RANGE: 2,
      preprocess.EXCLUDED_LABEL: 1}),
    ('casme3', '7class', 'release', ['spNO1', 'spNO2', 'spNO40'],
     {preprocess.UNKNOWN_LABEL: 1, preprocess.TOO_FEW_FRAMES: 1,
      preprocess.MISSING_FOLDER: 1, preprocess.INVALID_RANGE: 2}),
    ('casme3', '4class', 'mol', ['spNO1', 'spNO2'],
     {preprocess.UNKNOWN_LABEL: 1, preprocess.TOO_FEW_FRAMES: 1}),
    ('fourdme', '3class', 'release', ['S01', 'S02'],
     {preprocess.AMBIGUOUS_LABEL: 1, preprocess.UNKNOWN_LABEL: 1,
      preprocess.TOO_FEW_FRAMES: 1, preprocess.MISSING_FOLDER: 1,
      preprocess.EXCLUDED_LABEL: 1}),
    ('mmew', '3class', 'release', ['S01', 'S02'],
     {preprocess.UNKNOWN_LABEL: 1, preprocess.TOO_FEW_FRAMES: 1,
      preprocess.MISSING_FOLDER: 1, preprocess.EXCLUDED_LABEL: 1}),
    ('mmew', '7class', 'release_meb', ['S01', 'S02', 'S03'],
     {preprocess.UNKNOWN_LABEL: 1, preprocess.TOO_FEW_FRAMES: 1}),
])
def test_new_builders_skip_bad_inputs_with_reasons(name, config, layout, splits,
                                                   expected, tmp_path):
  root = os.path.join(BUILDERS, name, 'dummy_data', layout)
  planned, summary = _plan(name, config, root, tmp_path)
  assert sorted(planned) == splits
  assert dict(summary.counts) == expected


def test_casme3_rows_are_ranges_of_task_videos():
  layout, entries = layouts.find_videos(
      'casme3', os.path.join(BUILDERS, 'casme3', 'dummy_data', 'release'))
  assert layout == 'release'
  by_id = {e.video_id: e for e in entries}
  # Four rows on one task video: suffixes in sheet order, one folder.
  assert [(by_id[v].onset, by_id[v].offset)
          for v in ('spNO1_a', 'spNO1_a2', 'spNO1_a3', 'spNO1_a4')] == [
              (1, 10), (14, 23), (26, 30), (32, 32)]
  assert by_id['spNO1_a'].folder == by_id['spNO1_a2'].folder
  assert by_id['spNO1_a'].folder.endswith(os.path.join('part_A', 'spNO.1', 'a', 'color'))
  assert by_id['spNO1_a'].subject == 'spNO1'
  assert by_id['spNO2_j'].folder.endswith(os.path.join('spNO.2', 'j', 'color'))  # 'J'.
  # Offset 0: the owners' full file gives 1845 for the first such row; the
  # second row's 2403 lies before its onset, so it is skipped, not guessed.
  assert (by_id['spNO40_e'].onset, by_id['spNO40_e'].offset) == (1838, 1845)
  assert by_id['spNO40_e2'].skip_reason == preprocess.INVALID_RANGE
  assert "Onset cell '/'" in by_id['spNO40_f'].skip_detail


def _sheet(path, header, rows):
  import openpyxl  # pylint: disable=g-import-not-at-top
  book = openpyxl.Workbook()
  book.active.append(header)
  for row in rows:
    book.active.append(row)
  book.save(path)


@pytest.mark.parametrize('frames', ['part_A_split/part_A', 'part_A', ''])
def test_casme3_frame_roots_and_loose_folder_names(tmp_path, frames):
  root = tmp_path / 'casme3'
  base = root / frames if frames else root
  (base / 'spNO210' / 'c' / 'color').mkdir(parents=True)  # No dot, as some copies.
  (base / 'spNO.216' / 'd' / 'color').mkdir(parents=True)
  _sheet(root / 'CAS(ME)3_part_A_ME_label_JpgIndex_v2.xlsx',
         ['Subject', 'Filename', 'Onset', 'Apex', 'Offset', 'AU', 'Objective class', 'emotion'],
         [['spNO.210', 'c', 10, 12, 20, '4', 'III', 'fear'],
          ['spNO.216', 'd', 3647, 2650, 2660, '4', 'III', 'sad'],
          [None, None, None, None, None, None, None, None],
          ['spNO.216', 'e', 0, 0, 9, '4', 'III', 'Others']])
  _, entries = layouts.find_videos('casme3', str(root))
  c, d, e = entries
  assert c.folder == str(base / 'spNO210' / 'c' / 'color') and c.subject == 'spNO210'
  assert (d.onset, d.offset) == (2647, 2660)  # The owners' onset.
  assert (e.onset, e.offset, e.video_id) == (0, 9, 'spNO216_e')


def test_casme3_frames_without_the_sheet_name_it(tmp_path):
  (tmp_path / 'part_A' / 'spNO.1' / 'a' / 'color').mkdir(parents=True)
  with pytest.raises(FileNotFoundError, match='JpgIndex_v2.xlsx'):
    layouts.find_videos('casme3', str(tmp_path))


def test_fourdme_emotion_cells():
  entries = layouts.scan_fourdme_release(
      os.path.join(BUILDERS, 'fourdme', 'dummy_data', 'release'))
  by_id = {e.video_id: e for e in entries}
  assert by_id['S02_1st_004_01_1'].skip_reason == preprocess.AMBIGUOUS_LABEL
  assert 'Surprise+Positive' in by_id['S02_1st_004_01_1'].skip_detail
  assert by_id['S02_1st_002_01_1'].emotion == 'repression'
  assert by_id['S01_1st_001_01_1'].folder.endswith(
      os.path.join('gray_micro', 'S01', 'S01_1st_001_01_1'))
  for cell in ('fear/disgust', 'happy + surprise', 'Negative, Repression'):
    assert len({layouts.normalise_emotion(c) for c in layouts._SEVERAL.split(cell)}) == 2


def test_mmew_trees_with_and_without_the_sheet(tmp_path):
  # The owners' tree without a sheet: labels and subjects from the folders.
  root = tmp_path / 'mmew'
  for sample in ('S03/happiness/S03-01-002', 'S04/repression/S04-07-001'):
    (root / sample).mkdir(parents=True)
  layout, entries = layouts.find_videos('mmew', str(root))
  assert layout == 'release'
  assert {(e.subject, e.video_id, e.emotion) for e in entries} == {
      ('S03', 'S03-01-002', 'happiness'), ('S04', 'S04-07-001', 'others')}
  # MEB's tree with the sheet: rows found by Filename, labels from the sheet.
  meb = tmp_path / 'meb'
  (meb / 'Micro_Expression' / 'repression' / 'S05-07-001').mkdir(parents=True)
  _sheet(meb / 'MMEW_Micro_Exp.xlsx',
         ['Subject', 'Filename', 'OnsetFrame', 'ApexFrame', 'OffsetFrame', 'Action Units',
          'Estimated Emotion', 'remarks'],
         [['S05', 'S05-07-001', 1, 5, 9, 'AU4', 'others', ''],
          ['S05', 'S05-02-001', 1, 5, 9, 'AU1+AU2', 'surprise', '']])
  _, entries = layouts.find_videos('mmew', str(meb))
  found, missing = entries
  assert found.folder == str(meb / 'Micro_Expression' / 'repression' / 'S05-07-001')
  assert (found.subject, found.emotion) == ('S05', 'others')
  assert missing.folder == str(meb / 'Micro_Expression' / 'surprise' / 'S05-02-001')


def test_nothing_buildable_is_a_clear_error(tmp_path):
  root = tmp_path / 'raw'
  (root / 'tense' / 's1_x_01').mkdir(parents=True)
  (root / 'tense' / 's1_x_01' / 'image1.jpg').write_bytes(b'')
  with pytest.raises(ValueError, match='no clip can be built'):
    _plan('smic', '3class', str(root), tmp_path / 'data')


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


class _Interrupted(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  VERSION = tfds.core.Version('1.0.0')

  def _info(self):
    return tfds.core.DatasetInfo(builder=self,
                                 features=records.features(layouts.THREE_CLASS))

  def _split_generators(self, dl_manager):
    return {'s1': self._generate_examples()}

  def _generate_examples(self):
    yield 'a', {'video': np.zeros((8, 144, 144, 1), np.uint8),
                'flow': np.zeros((7, 144, 144, 2), np.float16),
                'landmarks': np.zeros((8, 68, 2), np.float32), 'label': 0,
                'subject': 's1', 'video_id': 'v', 'frame_indices': np.arange(8, dtype=np.int32)}
    raise KeyboardInterrupt  # The user stops the build.


def test_interrupted_build_leaves_nothing_complete(tmp_path):
  builder = _Interrupted(data_dir=str(tmp_path), file_format='array_record')
  with pytest.raises(KeyboardInterrupt):
    builder.download_and_prepare()
  assert not builder.is_prepared()
  final = os.path.join(str(tmp_path), '_interrupted', '1.0.0')
  assert not os.path.exists(os.path.join(final, 'dataset_info.json'))
  written = [f for _, _, files in os.walk(tmp_path) for f in files
             if 'array_record' in f]
  assert not [r for r in written if os.path.exists(os.path.join(final, r))]


def test_docs_name_the_classes_in_label_order():
  """A user copies class names from the docs: a swapped order would silently
  swap two classes in every prediction."""
  text = open(os.path.join(REPO, 'docs', 'TRAINING.md')).read()
  configs = text.split('\n## Configs\n')[1].split('\n## ')[0]  # The table of configs.
  rows = [line for line in configs.splitlines()
          if line.startswith('| `') and ('3class' in line or 'synthetic_me' in line)]
  assert len(rows) == 8
  for row in rows:
    names = row.split('|')[3].split('(')[0].strip()
    assert names == ', '.join(layouts.THREE_CLASS), row
  for config in ('smic.py', 'casme2_3cls.py', 'demo.py'):
    text = open(os.path.join(REPO, 'configs', config)).read()
    assert ', '.join(layouts.THREE_CLASS) in text, config


def test_tfds_build_help_and_the_docs_name_every_builder():
  """`tfds_build --help` (its description is the module docstring) and
  docs/DATA.md list every builder, and the usage names the command as it is run."""
  import subprocess  # pylint: disable=import-outside-toplevel
  from mol_jax import tfds_build  # pylint: disable=import-outside-toplevel
  listed = tfds_build.__doc__.split('project builder\'s name (')[1].split(':')[0]
  data_md = open(os.path.join(REPO, 'docs', 'DATA.md')).read()
  paragraph = data_md.split("The dataset is a builder's name")[1].split(':')[0]
  for name in builder.BUILDER_NAMES:
    assert name in listed.replace(',', ' ').split(), name
    assert f'`{name}`' in paragraph, name
  usage = subprocess.run([sys.executable, '-m', 'mol_jax.tfds_build', '--help'], cwd=REPO,
                         capture_output=True, text=True, timeout=300)
  assert usage.returncode == 0, usage.stderr[-2000:]
  assert usage.stdout.startswith('usage: python -m mol_jax.tfds_build '), usage.stdout[:200]
  assert all(name in usage.stdout for name in builder.BUILDER_NAMES)


def test_tfds_build_expands_a_tilde_after_the_equals_sign(monkeypatch, tmp_path):
  """`--data_dir=~/x` reaches us unexpanded from a shell (README's line)."""
  from mol_jax import tfds_build  # pylint: disable=import-outside-toplevel
  monkeypatch.setenv('HOME', str(tmp_path))
  argv = tfds_build.expand_user_folders(
      ['smic', '--data_dir=~/tfds', '--manual_dir', '~/raw', '--config=3class',
       '--max_examples_per_split=~'])
  assert argv == ['smic', f'--data_dir={tmp_path}/tfds', '--manual_dir', f'{tmp_path}/raw',
                  '--config=3class', '--max_examples_per_split=~']
  readme = open(os.path.join(REPO, 'README.md')).read()
  assert '--data_dir=~' not in readme


@pytest.mark.parametrize('manual', ['missing', 'empty', 'not_given'])
def test_tfds_build_without_raw_data_is_one_line_and_exit_3(tmp_path, manual):
  """As a user meets it: the README's SMIC line with the licensed folder
  missing, empty, or not passed at all."""
  import subprocess  # pylint: disable=import-outside-toplevel
  data = tmp_path / 'tfds'
  folder = tmp_path / 'raw'
  if manual == 'empty':
    folder.mkdir()
  command = [sys.executable, '-m', 'mol_jax.tfds_build', 'smic', '--config=3class',
             f'--data_dir={data}'] + ([] if manual == 'not_given' else [f'--manual_dir={folder}'])
  proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 3, proc.stderr[-3000:]
  last = proc.stderr.strip().splitlines()[-1]
  assert 'Traceback' not in proc.stderr and last.startswith('error: '), proc.stderr[-3000:]
  assert '--manual_dir' in last and 'docs/DATA.md' in last
  if manual != 'not_given':
    assert str(folder) in last and 'SMIC needs a signed licence' in last
    assert not data.exists()  # refused before TFDS made any folder


def test_killed_builds_leave_nothing_that_a_new_build_keeps(tmp_path):
  version = tmp_path / 'synthetic_me' / 'small' / '1.5.0'
  left = version.parent / 'incomplete.AB12CD_1.5.0'
  other = version.parent / 'incomplete.AB12CD_1.3.0'  # another version's: not ours
  for folder in (left, other):
    (folder / 'shards').mkdir(parents=True)
    (folder / 'shards' / 'x.array_record-00000-of-00001').write_bytes(b'0' * 100)
  assert builder.remove_incomplete_builds(version) == [left.name]
  assert not left.exists() and other.exists()


def test_tfds_build_without_a_config_builds_the_training_one(capsys):
  from mol_jax import tfds_build  # pylint: disable=import-outside-toplevel
  argv = tfds_build.with_default_config(['smic', '--manual_dir=raw'])
  assert argv == ['smic', '--manual_dir=raw', '--config=3class']
  said = capsys.readouterr().err
  assert 'building smic/3class, the one configs/smic.py trains on' in said
  assert '3class_per_clip' in said
  folder = os.path.join(BUILDERS, 'casme2')
  assert tfds_build.with_default_config([folder])[-1] == '--config=5class'
  for named in (['smic/3class_per_clip'], ['smic', '--config=3class_registered'],
                ['smic', '--config_idx=1']):
    assert tfds_build.with_default_config(named) == named


@pytest.mark.slow
def test_the_tfds_console_script_builds_what_training_reads(tmp_path):
  """`tfds build` itself, as the design card says, after `pip install -e
  '.[tfds]'`: no --file_format, and training's reader opens the build."""
  import subprocess  # pylint: disable=import-outside-toplevel
  from mol_jax.data import input_pipeline  # pylint: disable=import-outside-toplevel
  script = os.path.join(os.path.dirname(sys.executable), 'tfds')
  try:
    import apache_beam  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
    import mlcroissant  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
  except ImportError as e:
    if os.environ.get('CI'):
      raise AssertionError("CI installs the test extras, which include '.[tfds]'") from e
    pytest.skip(f"the tfds console script needs pip install -e '.[tfds]' ({e})")
  data = tmp_path / 'tfds'
  command = [script, 'build', os.path.join(BUILDERS, 'smic'), '--config=3class',
             f'--manual_dir={os.path.join(BUILDERS, "smic", "dummy_data", "mol")}',
             f'--data_dir={data}']
  env = dict(os.environ, MOL_JAX_NUM_WORKERS='0')
  proc = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=900,
                        env=env)
  assert proc.returncode == 0, proc.stderr[-3000:]
  version = data / 'smic' / '3class' / '1.0.0'
  assert sorted(p.name for p in version.glob('*.array_record-*')) == [
      'smic-s1.array_record-00000-of-00001', 'smic-s2.array_record-00000-of-00001']
  assert input_pipeline.list_subjects('smic/3class', str(data)) == ['s1', 's2']
  assert input_pipeline.class_names('smic/3class', str(data)) == ['surprise', 'positive',
                                                                   'negative']


@pytest.mark.parametrize('name', [n for n in builder.BUILDER_NAMES if n != 'synthetic_me'])
def test_each_licensed_builder_has_the_config_its_build_names(name):
  """`mol_jax.tfds_build <name>` builds the first config and names the
  config file that trains on it: that file exists and reads that build."""
  cls = builder.builder_class(name)
  config_file = cls.training_config_file()
  module = importlib.import_module('configs.' + config_file[:-len('.py')])
  assert module.get_config().dataset == f'{name}/{cls.BUILDER_CONFIGS[0].name}'
