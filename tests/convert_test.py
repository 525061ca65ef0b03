"""Importing official weights: file formats, the CLI, every bad input, and the
ablation variants (`use_fcc`, `use_ccc`) importing the layers they keep."""

import sys

import numpy as np
import pytest
import torch
import jax
from flax import nnx

import mol_jax
from mol_jax import checkpointing, convert, exit_codes
from mol_jax.model.mol import create_model
from tests import golden


def _state_dict(num_classes=3):
  """The full official state_dict of the golden weights."""
  golden.require()
  return golden.official_state_dict(num_classes)


def _same_variables(a, b):
  va, vb = checkpointing.model_variables(a), checkpointing.model_variables(b)
  eq = jax.tree.map(lambda x, y: bool(np.array_equal(np.asarray(x), np.asarray(y))), va, vb)
  return all(jax.tree.leaves(eq))


def test_pth_and_npz_give_the_same_model(tmp_path):
  sd = _state_dict()
  pth, npz = tmp_path / 'w.pth', tmp_path / 'w.npz'
  # Saved from nn.DataParallel: keys carry 'module.'.
  torch.save({'module.' + k: torch.from_numpy(v) for k, v in sd.items()}, pth)
  np.savez(npz, **sd)
  a = convert.import_official(convert.load_state_dict(str(pth)), 3)
  b = convert.import_official(convert.load_state_dict(str(npz)), 3)
  assert _same_variables(a, b)
  assert a.num_classes == 3


def test_every_parameter_comes_from_the_weights():
  sd = _state_dict()
  flat = convert.official_to_flat(sd)
  model = create_model(3)
  expected = dict(nnx.to_flat_state(nnx.state(model, (nnx.Param, nnx.BatchStat))))
  assert set(flat) == set(expected)
  ignored = [k for k in sd if '.ffn.' in k or k.endswith('num_batches_tracked')]
  assert len(sd) - len(ignored) == len(flat)


def test_flat_to_official_inverts_every_layout():
  """Flax arrays back in official keys and layouts: the exact state_dict,
  less the keys the import ignores, whatever the dtype."""
  sd = _state_dict()
  shapes = {k: v.shape for k, v in sd.items()}
  back = convert.flat_to_official(convert.official_to_flat(sd), shapes)
  ignored = {k for k in sd if '.ffn.' in k or k.endswith('num_batches_tracked')}
  assert set(back) == set(sd) - ignored
  for key, value in back.items():
    np.testing.assert_array_equal(value, sd[key], err_msg=key)
  as64 = {p: v.astype(np.float64) for p, v in convert.official_to_flat(sd).items()}
  assert convert.flat_to_official(as64, shapes)['mer_3dcnn.fc1.weight'].dtype == np.float64


def test_flat_to_official_names_a_missing_parameter():
  sd = _state_dict()
  flat = convert.official_to_flat(sd)
  del flat[('ccc_1', 'w1')]
  with pytest.raises(convert.WeightsError, match='CCC_1.conv1.weight'):
    convert.flat_to_official(flat, {k: v.shape for k, v in sd.items()})


def test_cli_writes_checkpoint_that_restores(tmp_path):
  sd = _state_dict(num_classes=5)
  weights = tmp_path / 'w5.npz'
  np.savez(weights, **sd)
  out = tmp_path / 'ckpt'
  assert convert.main(['--weights', str(weights), '--num_classes', '5',
                       '--neighbor_num', '6', '--out', str(out)]) == 0
  restored = checkpointing.restore_model(str(out))
  assert (restored.num_classes, restored.neighbor_num) == (5, 6)
  assert _same_variables(restored, convert.import_official(sd, 5, 6))
  # Never overwrites an existing checkpoint silently.
  assert convert.main(['--weights', str(weights), '--out', str(out)]) == exit_codes.USAGE


def test_missing_file(tmp_path, capsys):
  with pytest.raises(FileNotFoundError, match='nope.pth'):
    mol_jax.from_official_weights(str(tmp_path / 'nope.pth'))
  assert convert.main(['--weights', str(tmp_path / 'nope.pth'),
                       '--out', str(tmp_path / 'o')]) == exit_codes.BAD_WEIGHTS
  assert 'nope.pth' in capsys.readouterr().err
  assert not (tmp_path / 'o').exists()


def test_class_count_mismatch_names_the_fix():
  with pytest.raises(convert.WeightsError, match='has 3 classes but num_classes=5'):
    convert.import_official(_state_dict(3), num_classes=5)


def test_unknown_key():
  sd = dict(_state_dict())
  sd['flownet.conv9.0.weight'] = np.zeros((2, 2, 3, 3), np.float32)
  with pytest.raises(convert.WeightsError, match='flownet.conv9.0.weight'):
    convert.import_official(sd, 3)


def test_missing_key():
  sd = dict(_state_dict())
  del sd['CCC_2.conv1.bias']
  with pytest.raises(convert.WeightsError, match='ccc_2.b1'):
    convert.import_official(sd, 3)


def test_wrong_shape():
  sd = dict(_state_dict())
  sd['ldm_predictor.fc2.weight'] = np.zeros((100, 512), np.float32)
  with pytest.raises(convert.WeightsError, match=r"'ldm_predictor.fc2.weight' gives ldm_predictor.fc2.kernel the shape \(512, 100\)"):
    convert.import_official(sd, 3)


def test_wrong_shape_of_a_reshaped_key_names_the_key():
  """fc1 of the MER head is reshaped from NCHW: a wrong shape fails in the
  reshape, which must still name the key."""
  sd = dict(_state_dict())
  sd['mer_3dcnn.fc1.weight'] = np.zeros((7, 5), np.float32)
  with pytest.raises(convert.WeightsError, match=r"'mer_3dcnn.fc1.weight' has shape \(7, 5\)"):
    convert.import_official(sd, 3)


@pytest.mark.parametrize('content', [b'', b'PK\x03\x04 truncated'])
def test_truncated_npz_names_the_file(tmp_path, capsys, content):
  path = tmp_path / 'weights.npz'
  np.savez(path, **_state_dict())
  path.write_bytes(content or path.read_bytes()[:1000])
  with pytest.raises(convert.WeightsError, match='weights.npz: not a readable .npz file'):
    convert.load_state_dict(str(path))
  assert convert.main(['--weights', str(path), '--out', str(tmp_path / 'o')]) == \
      exit_codes.BAD_WEIGHTS
  err = capsys.readouterr().err
  assert err.count('\n') == 1 and 'weights.npz' in err and 'Traceback' not in err
  assert not (tmp_path / 'o').exists()


def test_cli_stores_class_names_that_predictions_use(tmp_path, capsys):
  weights = tmp_path / 'w.npz'
  np.savez(weights, **_state_dict(3))
  assert convert.main(['--weights', str(weights), '--out', str(tmp_path / 'named'),
                       '--class_names', 'surprise, positive,negative']) == 0
  assert 'class_0' not in capsys.readouterr().out
  from mol_jax import inference  # pylint: disable=import-outside-toplevel
  predictor = inference.from_checkpoint(str(tmp_path / 'named'))
  assert predictor.class_names == ['surprise', 'positive', 'negative']
  assert convert.main(['--weights', str(weights), '--out', str(tmp_path / 'unnamed')]) == 0
  assert 'class_0, class_1' in capsys.readouterr().out
  # A wrong count is refused before anything is written.
  assert convert.main(['--weights', str(weights), '--out', str(tmp_path / 'two'),
                       '--class_names', 'a,b']) == exit_codes.USAGE
  assert '3 classes' in capsys.readouterr().err and not (tmp_path / 'two').exists()


def test_not_a_state_dict(tmp_path):
  path = tmp_path / 'list.pth'
  torch.save([torch.zeros(3)], path)
  with pytest.raises(convert.WeightsError, match='not a state_dict'):
    convert.load_state_dict(str(path))
  garbage = tmp_path / 'garbage.pth'
  garbage.write_bytes(b'not a torch file')
  with pytest.raises(convert.WeightsError, match='garbage.pth'):
    convert.load_state_dict(str(garbage))


@pytest.mark.parametrize('flags,refused_prefixes', [
    ({'use_fcc': False}, ('FCC_1.', 'FCC_2.')),
    ({'use_ccc': False}, ('CCC_1.', 'CCC_2.')),
    ({'use_fcc': False, 'use_ccc': False}, ('FCC_', 'CCC_')),
])
def test_variants_import_official_weights_where_the_layers_exist(flags, refused_prefixes):
  golden.require()
  sd = golden.official_state_dict()
  refused = {}
  model = convert.import_official(sd, 3, 4, refused=refused, **flags)
  assert refused and all(k.startswith(refused_prefixes) for k in refused)
  assert all('use_' in reason and 'ablation' in reason for reason in refused.values())
  full = convert.import_official(sd, 3, 4)
  # Every layer that remains holds the official weights.
  variant = nnx.to_flat_state(nnx.state(model, (nnx.Param, nnx.BatchStat)))
  reference = dict(nnx.to_flat_state(nnx.state(full, (nnx.Param, nnx.BatchStat))))
  for path, value in variant:
    np.testing.assert_array_equal(np.asarray(value[...]), np.asarray(reference[path][...]))


def test_missing_pytorch_is_exit_2_in_convert_and_predict(tmp_path, capsys, monkeypatch):
  """A .pth without PyTorch installed: the same one line and code in both
  commands (a missing dependency, as Beam is for tfds_build)."""
  from mol_jax import predict  # pylint: disable=import-outside-toplevel
  weights = tmp_path / 'official.pth'
  weights.write_bytes(b'a .pth file')
  video = tmp_path / 'face.avi'
  video.write_bytes(b'')
  monkeypatch.setitem(sys.modules, 'torch', None)  # `import torch` fails
  assert convert.main(['--weights', str(weights), '--out', str(tmp_path / 'out')]) == (
      exit_codes.USAGE)
  from_convert = capsys.readouterr().err
  assert predict.main(['--official_weights', str(weights), '--input', str(video), '--out',
                       str(tmp_path / 'pred'), '--quiet']) == exit_codes.USAGE
  from_predict = capsys.readouterr().err
  assert from_convert == from_predict
  assert from_convert.startswith(f'error: reading {weights} needs PyTorch: pip install')
  assert from_convert.count('\n') == 1


@pytest.mark.parametrize('command', ['convert', 'predict', 'explain'])
def test_verbose_adds_the_traceback(tmp_path, capsys, command):
  """Every command's --verbose prints the traceback before the one line."""
  import importlib  # pylint: disable=import-outside-toplevel
  main = importlib.import_module(f'mol_jax.{command}').main
  video = tmp_path / 'face.avi'
  video.write_bytes(b'')
  missing = str(tmp_path / 'absent')
  args = {'convert': ['--weights', missing + '.npz', '--out', str(tmp_path / 'out')],
          'predict': ['--checkpoint', missing, '--input', str(video), '--out',
                      str(tmp_path / 'out'), '--quiet'],
          'explain': ['--checkpoint', missing, '--input', str(video), '--out',
                      str(tmp_path / 'out')]}[command]
  assert main(args) == exit_codes.BAD_WEIGHTS
  quiet = capsys.readouterr().err
  assert quiet.count('\n') == 1 and 'Traceback' not in quiet
  assert main(args + ['--verbose']) == exit_codes.BAD_WEIGHTS
  verbose = capsys.readouterr().err
  assert verbose.startswith('Traceback') and verbose.endswith(quiet)
