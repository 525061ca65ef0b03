"""The command line: config files load from any working directory; --help;
one line and a documented exit code for every bad input."""

import os
import subprocess
import sys

import pytest

from tests import REPO


def test_main_loads_a_config_from_another_working_directory(tmp_path):
  """configs/smic.py imports `configs.default`; run from outside the
  repository, the run reaches the dataset check and says the licensed set
  is missing, instead of failing to import the config."""
  proc = subprocess.run(
      [sys.executable, '-m', 'mol_jax.main', f'--config={REPO}/configs/smic.py',
       f'--workdir={tmp_path / "work"}', f'--config.data_dir={tmp_path / "empty"}'],
      cwd=tmp_path, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 3, proc.stderr[-2000:]  # data missing
  assert 'ModuleNotFoundError' not in proc.stderr and 'Traceback' not in proc.stderr
  assert proc.stderr.strip().splitlines()[-1].startswith('error: dataset smic/3class is not built')
  assert not (tmp_path / 'work').exists()  # nothing written before the inputs are checked


def _main(tmp_path, *args):
  return subprocess.run([sys.executable, '-m', 'mol_jax.main', *args], cwd=REPO,
                        capture_output=True, text=True, timeout=600)


def test_help_names_the_configs_and_the_docs(tmp_path):
  proc = _main(tmp_path, '--help')
  assert proc.returncode == 0, proc.stderr
  for text in ('configs/smic.py', 'configs/demo.py', 'docs/TRAINING.md', 'exit codes'):
    assert text in proc.stdout, text


@pytest.mark.parametrize('args, expected', [
    (['--config=configs/smc.py'], '--config=configs/smc.py: no such config file'),
    (['--config=configs/test.py', '--config.not_a_field=1'],
     "--config.not_a_field=1: the config has no field 'not_a_field'"),
    (['--config=configs/test.py', '--config.batch_size=abc'], 'batch_size'),
    (['--config=configs/test.py', '--config.batch_size=-3'],
     'config.batch_size must be at least 1, got -3'),
    (['--config=configs/test.py', '--config.dataset=synthetic_me/small,,'],
     "config.dataset='synthetic_me/small,,' has an empty entry"),
    # A misspelt config is named before the set is built (it was a build's
    # CalledProcessError).
    (['--config=configs/test.py', '--config.protocol=lodo',
      '--config.dataset=synthetic_me/small,synthetic_me/smal'],
     "config.dataset: synthetic_me has no config 'smal'; its configs are default,"),
    # The mesh's checks raise plain ValueErrors in `sharding`; main still
    # ends them in one line and exit 2.
    (['--config=configs/test.py', '--config.mesh.num_devices=1000'],
     'config.mesh.num_devices=1000, but'),
    (['--config=configs/test.py', '--config.mesh.param_sharding=zero'],
     'config.mesh.param_sharding must be one of'),
])
def test_bad_config_is_one_line_and_exit_2(tmp_path, args, expected):
  work, data = tmp_path / 'work', tmp_path / 'tfds'
  proc = _main(tmp_path, *args, f'--workdir={work}', f'--config.data_dir={data}')
  lines = proc.stderr.strip().splitlines()
  assert proc.returncode == 2, proc.stderr[-3000:]
  assert 'Traceback' not in proc.stderr and lines[-1].startswith('error: '), proc.stderr[-3000:]
  assert expected in lines[-1], lines[-1]
  assert not work.exists() and not data.exists()  # nothing written, nothing built


@pytest.mark.parametrize('config, build', [
    ('casme3_3cls', 'casme3 --config=3class'), ('casme3_4cls', 'casme3 --config=4class'),
    ('samm_3cls', 'samm --config=3class'), ('casme2_3cls', 'casme2 --config=3class')])
def test_not_built_names_the_exact_build_and_the_default_folder(tmp_path, config, build):
  """Without --config.data_dir the data is looked for in TFDS's default
  folder: the line names it, and the build command builds the config's own
  set (without --config, casme3 would build 7class)."""
  default = tmp_path / 'tfds_default'
  proc = subprocess.run([sys.executable, '-m', 'mol_jax.main', f'--config=configs/{config}.py',
                         f'--workdir={tmp_path / "work"}'], cwd=REPO, capture_output=True,
                        text=True, timeout=600, env=dict(os.environ, TFDS_DATA_DIR=str(default)))
  assert proc.returncode == 3, proc.stderr[-3000:]
  line = proc.stderr.strip().splitlines()[-1]
  assert 'Traceback' not in proc.stderr
  assert f'data_dir={default} (the TFDS default)' in line, line
  assert (f'`python -m mol_jax.tfds_build {build} --manual_dir=RAW --data_dir={default}`'
          in line), line
  assert not (tmp_path / 'work').exists()


@pytest.mark.parametrize('where, expected', [
    ('file', 'WORK: --workdir is a file, not a folder; name a folder'),
    ('under_file', 'WORK: --workdir cannot be created: FILE is a file, not a folder')])
def test_unusable_workdir_is_one_line_and_exit_2(tmp_path, where, expected):
  afile = tmp_path / 'afile'
  afile.write_text('mine')
  work = afile if where == 'file' else afile / 'work'
  proc = _main(tmp_path, '--config=configs/test.py', f'--workdir={work}',
               f'--config.data_dir={tmp_path / "tfds"}')
  assert proc.returncode == 2, proc.stderr[-3000:]
  assert proc.stderr.count('\n') == 1, proc.stderr[-3000:]
  assert proc.stderr == 'error: ' + expected.replace('WORK', str(work)).replace(
      'FILE', str(afile)) + '\n'
  assert afile.read_text() == 'mine' and not (tmp_path / 'tfds').exists()


def test_missing_workdir_is_exit_2(tmp_path):
  proc = _main(tmp_path, '--config=configs/test.py')
  assert proc.returncode == 2 and '--workdir' in proc.stderr.strip().splitlines()[-1]


def test_verbose_adds_the_traceback(tmp_path):
  proc = _main(tmp_path, '--config=configs/test.py', '--config.not_a_field=1', '--verbose',
               f'--workdir={tmp_path / "work"}')
  assert proc.returncode == 2 and 'Traceback' in proc.stderr
