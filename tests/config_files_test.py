"""Config files load by path from any working directory, their `from configs
import default` resolved beside the file, without changing `sys.path`."""

import os
import sys

import pytest

from mol_jax import config_files
from tests import REPO


@pytest.mark.parametrize('argv', [['--config=/r/configs/smic.py'],
                                  ['--config', '/r/configs/smic.py'],
                                  ['-config=/r/configs/smic.py', '--config.seed=1'],
                                  ['--config=/r/configs/smic.py:override']])
def test_path_from_argv_reads_every_absl_spelling(argv):
  assert config_files.path_from_argv(['main.py', '--workdir=w'] + argv) == '/r/configs/smic.py'


def test_path_from_argv_without_a_config_flag():
  assert config_files.path_from_argv(['main.py', '--workdir=w']) is None


def _write_configs(folder, seed):
  folder.mkdir()
  (folder / 'base.py').write_text(
      'import ml_collections\n\ndef get_config():\n'
      f'  return ml_collections.ConfigDict({{"seed": {seed}, "name": "base"}})\n')
  (folder / 'child.py').write_text(
      'from configs import base\n\ndef get_config():\n'
      '  config = base.get_config()\n  config.name = "child"\n  return config\n')


def test_load_imports_the_base_beside_the_file_not_on_sys_path(tmp_path, monkeypatch):
  """Two folders of configs (no `__init__.py`) in one process: each child
  gets its own sibling base, and `sys.path` is left as it was."""
  monkeypatch.chdir(tmp_path)
  path_before = list(sys.path)
  _write_configs(tmp_path / 'a', seed=1)
  _write_configs(tmp_path / 'b', seed=2)
  try:
    first = config_files.load(str(tmp_path / 'a' / 'child.py'))
    second = config_files.load(str(tmp_path / 'b' / 'child.py'))
  finally:
    for name in [n for n in sys.modules if n == 'configs' or n.startswith('configs.')]:
      del sys.modules[name]
  assert (first.name, first.seed) == ('child', 1)
  assert (second.name, second.seed) == ('child', 2)
  assert sys.path == path_before


def test_load_reads_the_checkouts_configs_from_elsewhere(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  config = config_files.load(os.path.join(REPO, 'configs', 'demo.py'))
  assert config.dataset == 'synthetic_me/demo'
  assert config.num_train_steps > 0


def test_load_names_a_missing_file(tmp_path):
  with pytest.raises(FileNotFoundError, match='nope.py: no such config file'):
    config_files.load(str(tmp_path / 'nope.py'))
