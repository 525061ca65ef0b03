"""Folder checks (`mol_jax.files`): what main and predict check first."""

from mol_jax import files


def test_read_only_workdir_is_refused(tmp_path, refuse_writes_in):
  """What main checks first (`files.folder_problem`) on a folder that refuses
  files."""
  locked = tmp_path / 'locked'
  locked.mkdir()
  refuse_writes_in(locked)
  assert files.folder_problem(str(locked / 'work'), '--workdir') == (
      f'{locked / "work"}: --workdir cannot be written (Permission denied); choose a '
      'writable folder')
  assert files.folder_problem(str(tmp_path / 'work'), '--workdir') is None
  assert sorted(p.name for p in tmp_path.iterdir()) == ['locked']  # no probe left
