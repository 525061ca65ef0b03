"""`python -m mol_jax.tfds_build`: its help and the docs name every builder, it
expands user folders and picks the training config, and a missing input
(raw data, Apache Beam) is one line and a documented exit code."""

import os
import sys

import pytest

from mol_jax import exit_codes
from mol_jax import tfds_build
from mol_jax.data import builder
from tests import REPO

BUILDERS = os.path.join(REPO, 'tfds_builders')


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


def test_beam_options_without_beam_are_one_line_and_exit_2(monkeypatch, capsys):
  # `tfds build` would drop the options and build without Beam.
  monkeypatch.setitem(sys.modules, 'apache_beam', None)  # `import` raises ImportError.
  with pytest.raises(SystemExit) as exit_info:
    tfds_build.main(['synthetic_me', '--config=small',
                     '--beam_pipeline_options=runner=FnApiRunner'])
  assert exit_info.value.code == exit_codes.USAGE
  assert 'error: --beam_pipeline_options needs Apache Beam' in capsys.readouterr().err
