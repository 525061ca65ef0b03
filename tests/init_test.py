"""`import mol_jax` (the package's own __init__): the prediction API, without
the dataset machinery it does not need; and the package's import graph: no
cycle, and imports at the top of each module except those `LAZY_IMPORTS`
names with their reason."""

import ast
import os
import subprocess
import sys

from tests import REPO


def test_import_mol_jax_does_not_import_tensorflow_datasets():
  """TFDS is read only by the alignment fallback for checkpoints older than
  their `alignment` metadata (`Predictor.model_alignment`), which imports it
  when it runs; importing it on `import mol_jax` cost start-up time."""
  proc = subprocess.run(
      [sys.executable, '-c', 'import sys, mol_jax; '
       'assert mol_jax.from_checkpoint and mol_jax.from_official_weights; '
       'print(sorted(m for m in sys.modules if m.split(".")[0] == "tensorflow_datasets"))'],
      capture_output=True, text=True, timeout=300, check=True)
  assert proc.stdout.strip() == '[]', proc.stdout[:2000]

PACKAGE = os.path.join(REPO, 'mol_jax')

# (module, what it imports inside a function): optional extras, and imports
# kept off `import mol_jax`'s start-up; each place says why.
LAZY_IMPORTS = {
    ('mol_jax.convert', 'torch'),  # the [torch] extra, for .pth files only
    ('mol_jax.reporting', 'tensorboardX'),  # optional: metrics.jsonl is the record
    ('mol_jax.tfds_build', 'apache_beam'),  # the [tfds] extra, for Beam builds only
    ('mol_jax.tfds_build', 'tensorflow_datasets.scripts.cli'),  # after absl's flags are marked
    ('mol_jax.tools.flow_baseline', 'sklearn.linear_model'),  # a test extra
    ('mol_jax.inference', 'mol_jax.data'),  # TFDS, for checkpoints without `alignment` only
    ('mol_jax.inference', 'mol_jax.convert'),  # `python -m mol_jax.convert` runs it as __main__
    ('mol_jax.data.builder', 'mol_jax.data.beam_build'),  # Beam, for Beam builds only
    ('mol_jax.data.registration', 'skimage'),  # start-up of `import mol_jax`
    ('mol_jax.data.registration', 'scipy'),
    ('mol_jax.data.registration', 'matplotlib.tri'),
}


def _modules() -> dict[str, str]:
  found = {}
  for folder, _, names in os.walk(PACKAGE):
    for name in names:
      if name.endswith('.py'):
        path = os.path.join(folder, name)
        module = os.path.relpath(path, REPO)[:-3].replace(os.sep, '.')
        found[module.removesuffix('.__init__')] = path
  return found


def _imports(tree: ast.AST, modules: dict[str, str]):
  """(node, imported module names of the package or not) of every import."""
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      yield node, [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
      subs = [f'{node.module}.{a.name}' for a in node.names
              if f'{node.module}.{a.name}' in modules]
      yield node, subs or [node.module]
    elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
          and node.func.attr == 'import_module' and node.args
          and isinstance(node.args[0], ast.Constant)):
      yield node, [node.args[0].value]  # importlib.import_module('a.b'): an edge too


def test_the_package_has_no_import_cycle():
  """Every import counts, in functions too: a cycle hidden in a function
  still makes two modules that cannot be read or changed apart."""
  modules = _modules()
  graph = {}
  for module, path in modules.items():
    edges = set()
    for _, names in _imports(ast.parse(open(path).read()), modules):
      # A module's own packages run first anyway; they are not an edge.
      edges.update(n for n in names if n in modules and not module.startswith(n + '.'))
    graph[module] = edges
  state = {}  # module -> 1 on the current path, 2 done

  def visit(module, path):
    state[module] = 1
    for other in sorted(graph[module]):
      if state.get(other) == 1:
        raise AssertionError('import cycle: ' + ' -> '.join(path + [module, other]))
      if other not in state:
        visit(other, path + [module])
    state[module] = 2

  for module in sorted(graph):
    if module not in state:
      visit(module, [])


def test_imports_are_at_the_top_except_the_listed_ones():
  modules = _modules()
  found = set()
  for module, path in modules.items():
    tree = ast.parse(open(path).read())
    top = {id(n) for n in tree.body}
    for node, names in _imports(tree, modules):
      if id(node) in top:
        continue
      for name in names:
        listed = [m for lazy_module, m in LAZY_IMPORTS
                  if lazy_module == module and (name == m or name.startswith(m + '.'))]
        found.add((module, listed[0] if listed else name))
  assert found == LAZY_IMPORTS
