"""Build planning and builds (`mol_jax.data.builder`): bad inputs skipped with
their reasons, interrupted and killed builds, each builder's configs, and
the `tfds build` console script."""

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
from mol_jax.tools import flow_report
from tests import REPO

BUILDERS = os.path.join(REPO, 'tfds_builders')


def _builder_module(name):
  """The file `tfds build tfds_builders/<name>` loads, loaded the same way: by path."""
  path = os.path.join(BUILDERS, name, f'{name}_dataset_builder.py')
  spec = importlib.util.spec_from_file_location(f'{name}_dataset_builder', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


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


def test_killed_builds_leave_nothing_that_a_new_build_keeps(tmp_path):
  version = tmp_path / 'synthetic_me' / 'small' / '1.5.0'
  left = version.parent / 'incomplete.AB12CD_1.5.0'
  other = version.parent / 'incomplete.AB12CD_1.3.0'  # another version's: not ours
  for folder in (left, other):
    (folder / 'shards').mkdir(parents=True)
    (folder / 'shards' / 'x.array_record-00000-of-00001').write_bytes(b'0' * 100)
  assert builder.remove_incomplete_builds(version) == [left.name]
  assert not left.exists() and other.exists()


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


def test_builder_configs_are_read_from_the_builders():
  from mol_jax.data import builder, layouts
  from mol_jax.data import synthetic
  assert builder.builder_config('synthetic_me/small').generator == synthetic.SMALL
  assert flow_report.align_mode('synthetic_me/default_per_clip') == 'per_clip'
  assert flow_report.align_mode('synthetic_me/default') == 'per_frame'
  assert builder.builder_config('casme2/5class_per_clip').classes == layouts.CASME2_5
  assert builder.builder_config('nobody/x') is None
  assert builder.dataset_alignment('samm/3class_per_clip') == 'per_clip'
  assert builder.dataset_alignment('samm/3class_registered') == 'registered'
  assert builder.dataset_alignment('synthetic_me/demo') == 'registered'
  assert builder.builder_config('smic/3class_registered').version == '1.3.0'
  assert builder.dataset_alignment('') == 'per_frame'
