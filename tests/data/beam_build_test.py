"""Preparation on Apache Beam (mol_jax.data.beam_build) builds what the default path builds."""

import ast
import os
import re
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow_datasets as tfds

from mol_jax.data import builder
from mol_jax.data import preprocess
from mol_jax.data import synthetic
from tests import REPO

# The DirectRunner's own batch engine, named: `runner=DirectRunner` would
# first download Beam's Prism runner where the internet is reachable (as in
# CI) and run the workers inside the launching process.
BEAM_OPTIONS = 'runner=FnApiRunner,direct_num_workers=2,direct_running_mode=multi_processing'


def _needs_beam():
  try:
    import apache_beam  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
  except ImportError as e:
    pytest.skip(f"apache_beam is not importable ({e}); pip install -e '.[test]' installs it")


def _build(raw: str, data_dir: str, *flags: str) -> tuple[list[str], float]:
  """Builds synthetic_me/small from `raw` with the CLI; returns its skip
  summary's lines and the wall time."""
  command = [sys.executable, '-m', 'mol_jax.tfds_build', 'synthetic_me', '--config=small',
             f'--manual_dir={raw}', f'--data_dir={data_dir}', '--log_level=WARNING', *flags]
  start = time.perf_counter()
  proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
  elapsed = time.perf_counter() - start
  assert proc.returncode == 0, proc.stderr[-3000:]
  lines = proc.stdout.splitlines()
  first = next(i for i, line in enumerate(lines) if line.startswith('synthetic_me/small: '))
  summary = [lines[first]]
  for line in lines[first + 1:]:
    if not re.match(r'  \w+: \d+ \(', line):
      break
    summary.append(line)
  return summary, elapsed


def _records(version_dir: str, split: str) -> list[object]:
  """The split's records as `tf.train.Example` messages: equal when every
  feature's stored bytes are (the files' bytes are not: protobuf writes a
  map's entries in an order that changes from one process to the next)."""
  from array_record.python import array_record_module  # pylint: disable=import-outside-toplevel
  from tensorflow_datasets.proto import tf_example_pb2  # pylint: disable=import-outside-toplevel
  paths = sorted(p for p in os.listdir(version_dir) if p.startswith(f'synthetic_me-{split}.'))
  records = []
  for path in paths:
    reader = array_record_module.ArrayRecordReader(os.path.join(version_dir, path))
    records.extend(tf_example_pb2.Example.FromString(r) for r in reader.read_all())
    reader.close()
  return records


@pytest.mark.slow
def test_beam_build_equals_the_default_build(tmp_path):
  """synthetic_me/small (6 clips, one with an undecodable frame) built in
  process and on Beam with 2 worker processes: same splits, same examples
  in the same order, bit for bit, and the same skip summary."""
  _needs_beam()
  raw = synthetic.generate(str(tmp_path / 'raw'), synthetic.SMALL)
  # A frame of one clip that no decoder reads: the workers skip that clip.
  config = builder.builder_config('synthetic_me/small')
  folder = os.path.join(raw, 'frames', 'surprise', 'sy02_v001')
  job, = preprocess.plan_video(folder, 'sy02_v001', preprocess.PreprocessOptions(
      max_clips_per_video=config.max_clips_per_video))
  with open(job.paths[4], 'wb') as f:
    f.write(b'not an image')

  here = str(tmp_path / 'here')
  beam = str(tmp_path / 'beam')
  summary_here, seconds_here = _build(raw, here, '--num_workers=0')
  summary_beam, seconds_beam = _build(raw, beam, f'--beam_pipeline_options={BEAM_OPTIONS}')
  print(f'default build {seconds_here:.1f} s, Beam build {seconds_beam:.1f} s')

  assert summary_here[0] == ('synthetic_me/small: 5 clip(s) built, 0 frame(s) used a '
                             'borrowed face box, 1 item(s) skipped.')
  assert summary_here[1:] == [f'  {preprocess.UNREADABLE_FRAME}: 1 ({job.paths[4]})']
  assert summary_beam == summary_here

  version = os.path.join('synthetic_me', 'small', '1.5.0')
  infos = [tfds.builder_from_directory(os.path.join(d, version)).info for d in (here, beam)]
  assert [info.file_format.value for info in infos] == ['array_record'] * 2
  splits = [{name: info.splits[name].shard_lengths for name in info.splits} for info in infos]
  assert splits[0] == splits[1] == {'sy01': [3], 'sy02': [2]}

  for split in ('sy01', 'sy02'):
    assert _records(os.path.join(here, version), split) == _records(os.path.join(beam, version),
                                                                    split)
    sources = [tfds.data_source('synthetic_me/small', split=split, data_dir=d)
               for d in (here, beam)]
    keys = [[], []]
    for a, b in zip(*(map(s.__getitem__, range(len(s))) for s in sources)):
      assert sorted(a) == sorted(b)
      for name in a:
        if isinstance(a[name], np.ndarray):
          assert a[name].dtype == b[name].dtype, name
          assert a[name].shape == b[name].shape, name
          assert a[name].tobytes() == b[name].tobytes(), name
        else:
          assert a[name] == b[name], name
      for k, example in enumerate((a, b)):
        keys[k].append(f'{example["video_id"].decode()}_c{example["frame_indices"][0]:03d}')
    assert keys[0] == keys[1] and len(keys[0]) == len(sources[0]) == len(sources[1])


def test_the_builders_and_the_cli_import_no_beam():
  code = ('import sys; from mol_jax import tfds_build; '
          'from mol_jax.data.builders import synthetic_me; '
          "assert 'apache_beam' not in sys.modules, 'apache_beam imported'")
  subprocess.run([sys.executable, '-c', code], cwd=REPO, check=True, timeout=120)


def _package_imports(path: str) -> set[str]:
  """The mol_jax modules a source file imports, wherever the import statement is."""
  names = set()
  for node in ast.walk(ast.parse(open(path).read())):
    if isinstance(node, ast.Import):
      names.update(alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom) and node.module:
      names.update(f'{node.module}.{alias.name}' for alias in node.names)
      names.add(node.module)
  return {name for name in names if name.startswith('mol_jax')}


def test_the_record_schema_and_the_beam_path_import_nothing_of_the_builder():
  """The builder uses both; an import back would make a cycle."""
  data = os.path.join(REPO, 'mol_jax', 'data')
  for module in ('records', 'beam_build'):
    imported = _package_imports(os.path.join(data, f'{module}.py'))
    assert 'mol_jax.data.builder' not in imported, module
    assert 'mol_jax.data.beam_build' not in imported, module
  assert 'mol_jax.data.builder' not in _package_imports(os.path.join(data, 'preprocess.py'))
