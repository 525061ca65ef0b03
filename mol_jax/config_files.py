"""Config files (`configs/*.py`), loaded by path from any working directory.

A config file builds on its base with `from configs import default`. For
that import, the folder holding the file is registered as the package
`configs` (`use_folder_of`) in this one place. Putting the folder's parent
on `sys.path` would also make every other module beside it importable.
Every command (`mol_jax.main`, `tools.ablation`, `tools.flow_probe`,
`tools.benchmark`) calls `prepare_command` before absl parses its flags,
or `load` to read a config file directly.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import types

import ml_collections

PACKAGE = 'configs'


def path_from_argv(argv: list[str]) -> str | None:
  """The `--config` file named in `argv` (without a `:override` suffix)."""
  for i, arg in enumerate(argv):
    # absl takes `--config=X`, `-config=X` and `--config X`.
    name, has_value, value = arg.lstrip('-').partition('=')
    if not arg.startswith('-') or name != 'config':
      continue
    path = value if has_value else (argv[i + 1] if i + 1 < len(argv) else '')
    if path:
      return path.split(':', 1)[0]
  return None


def use_folder_of(path: str) -> None:
  """Makes the folder that holds config file `path` the package `configs`.

  A package of that name imported from another folder is replaced, with its
  submodules, so that a process that loads configs from two checkouts gets
  each file's own siblings.
  """
  folder = os.path.dirname(os.path.abspath(path))
  current = sys.modules.get(PACKAGE)
  if current is not None and list(getattr(current, '__path__', [])) == [folder]:
    return
  for name in [n for n in sys.modules if n == PACKAGE or n.startswith(PACKAGE + '.')]:
    del sys.modules[name]
  init = os.path.join(folder, '__init__.py')
  if os.path.isfile(init):
    spec = importlib.util.spec_from_file_location(PACKAGE, init,
                                                  submodule_search_locations=[folder])
    package = importlib.util.module_from_spec(spec)
    sys.modules[PACKAGE] = package
    spec.loader.exec_module(package)
  else:  # A folder of config files without `__init__.py` is a namespace package.
    package = types.ModuleType(PACKAGE)
    package.__path__ = [folder]
    sys.modules[PACKAGE] = package


def prepare_command(argv: list[str]) -> None:
  """Before absl parses `argv`: the `--config` file's siblings importable."""
  path = path_from_argv(argv)
  if path and os.path.isfile(path):
    use_folder_of(path)


def load(path: str) -> ml_collections.ConfigDict:
  """The `get_config()` of config file `path`."""
  if not os.path.isfile(path):
    raise FileNotFoundError(f'{path}: no such config file; configs are Python files such as '
                            'configs/smic.py')
  use_folder_of(path)
  stem = os.path.splitext(os.path.basename(path))[0]
  spec = importlib.util.spec_from_file_location(f'{PACKAGE}.{stem}', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()
