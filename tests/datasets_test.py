"""Tests of the raw layouts, class maps and build planning (mol_jax.datasets)."""

import os
import sys
import types

import numpy as np
import pytest
import tensorflow_datasets as tfds

from mol_jax.data import builder, layouts
from mol_jax.data import preprocess

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILDERS = os.path.join(REPO, 'tfds_builders')


def _builder_module(name):
  if BUILDERS not in sys.path:
    sys.path.insert(0, BUILDERS)
  module = __import__(f'{name}.{name}_dataset_builder')
  return getattr(module, f'{name}_dataset_builder')


def test_class_maps():
  assert layouts.map_emotion('Happiness', layouts.THREE_CLASS) == 'positive'
  assert layouts.map_emotion('repression', layouts.THREE_CLASS) == 'negative'
  assert layouts.map_emotion('Other', layouts.THREE_CLASS) is None
  assert layouts.map_emotion('Other', layouts.SAMM_5) == 'others'
  assert layouts.map_emotion('fear', layouts.CASME2_5) is None
  assert layouts.map_emotion('disgust', layouts.SAMM_5) is None
  with pytest.raises(KeyError):
    layouts.map_emotion('tense', layouts.THREE_CLASS)


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


def test_nothing_buildable_is_a_clear_error(tmp_path):
  root = tmp_path / 'raw'
  (root / 'tense' / 's1_x_01').mkdir(parents=True)
  (root / 'tense' / 's1_x_01' / 'image1.jpg').write_bytes(b'')
  with pytest.raises(ValueError, match='no clip can be built'):
    _plan('smic', '3class', str(root), tmp_path / 'data')


class _Interrupted(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  VERSION = tfds.core.Version('1.0.0')

  def _info(self):
    return tfds.core.DatasetInfo(builder=self,
                                 features=builder.features(layouts.THREE_CLASS))

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
  records = [f for _, _, files in os.walk(tmp_path) for f in files
             if 'array_record' in f]
  assert not [r for r in records if os.path.exists(os.path.join(final, r))]


def test_docs_name_the_classes_in_label_order():
  """A user copies class names from the docs: a swapped order would silently
  swap two classes in every prediction."""
  rows = [line for line in open(os.path.join(REPO, 'docs', 'TRAINING.md'))
          if line.startswith('| `') and ('3class' in line or 'synthetic_me' in line)]
  assert len(rows) == 6
  for row in rows:
    names = row.split('|')[3].split('(')[0].strip()
    assert names == ', '.join(layouts.THREE_CLASS), row
  for config in ('smic.py', 'casme2_3cls.py', 'demo.py'):
    text = open(os.path.join(REPO, 'configs', config)).read()
    assert ', '.join(layouts.THREE_CLASS) in text, config


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
  version = tmp_path / 'synthetic_me' / 'small' / '1.4.0'
  left = version.parent / 'incomplete.AB12CD_1.4.0'
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
