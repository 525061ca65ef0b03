"""Tests of mol_jax.data.input_pipeline on a small TFDS set with traceable values
(`tests/fake_me.py`), and of the exact-motion truth it carries from
synthetic_me/small."""

import itertools

import numpy as np
import pytest

from configs import test as test_config
from mol_jax.data import input_pipeline
from mol_jax.data import sources
from tests import fake_me
from tests.fake_me import CLASSES, NAME, SUBJECTS, FakeMe
from tests.fake_me import record as _record


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  return fake_me.build(tmp_path_factory.mktemp('tfds'))


def _make(data_dir, **kwargs):
  args = dict(batch_size=4, eval_batch_size=4, seed=0, process_index=0,
              process_count=1)
  args.update(kwargs)
  return input_pipeline.create_datasets(NAME, data_dir, ['b'], **args)


def test_subjects_and_classes(data_dir):
  assert input_pipeline.list_subjects(NAME, data_dir) == ['a', 'b', 'c']
  assert input_pipeline.class_names(NAME, data_dir) == list(CLASSES)
  with pytest.raises(ValueError, match='not splits'):
    _make(data_dir, train_subjects=['zz'])


def test_a_tfrecord_build_says_how_to_rebuild(tmp_path):
  """A tfrecord build (`tfds build --file_format=tfrecord`): training on it must say so in
  one line, not fail later in random access."""
  pytest.importorskip('tensorflow', reason="pip install -e '.[test]' installs TensorFlow")
  FakeMe(data_dir=str(tmp_path), file_format='tfrecord').download_and_prepare()
  with pytest.raises(FileNotFoundError, match=r'built as tfrecord; mol_jax reads array_record'
                     r'.*--file_format=array_record --overwrite'):
    input_pipeline.list_subjects(NAME, str(tmp_path))


def test_normalisation_statistics(data_dir):
  stats = input_pipeline.subject_statistics(NAME, data_dir, ['a', 'b'])
  for subject in ('a', 'b'):
    pixels = np.stack([_record(subject, j)['video'][:, 8:136, 8:136]
                       for j in range(SUBJECTS[subject])]).astype(np.float64)
    mean = pixels.mean()
    assert stats[subject] == pytest.approx((mean, pixels.max() - mean))


def _decode(batch, i):
  """Crop offset and record index of example i of a batch."""
  dx, dy = batch['flow'][i, 0, 0, 0]
  idx = (batch['landmarks'][i, 0, 0, 0] + dx - 1) / 1000
  return int(dy), int(dx), int(round(idx))


def test_train_batches_shapes_and_consistent_crop(data_dir):
  ds = _make(data_dir)
  assert ds.train_subjects == ['a', 'c'] and ds.num_train_examples == 9
  batch = next(ds.train)
  assert set(batch) == {'video', 'flow', 'landmarks', 'label', 'mask'}
  assert batch['video'].shape == (4, 8, 128, 128, 1)
  assert batch['flow'].shape == (4, 7, 128, 128, 2)
  assert batch['landmarks'].shape == (4, 7, 68, 2)
  assert batch['label'].shape == (4,) and batch['label'].dtype == np.int32
  assert all(batch[k].dtype == np.float32 for k in ('video', 'flow', 'landmarks', 'mask'))
  np.testing.assert_array_equal(batch['mask'], 1)
  offsets = set()
  for b in itertools.islice(ds.train, 10):
    for i in range(4):
      dy, dx, idx = _decode(b, i)
      offsets.add((dy, dx))
      assert 0 <= dy <= 16 and 0 <= dx <= 16
      subject = 'a' if idx < 100 else 'c'
      record = _record(subject, idx % 100)
      # Flow cropped at the same offset as the video.
      np.testing.assert_array_equal(
          b['flow'][i], record['flow'][:, dy:dy + 128, dx:dx + 128])
      # Landmarks of frames 1..7, shifted by the offset.
      np.testing.assert_allclose(
          b['landmarks'][i], record['landmarks'][1:] - [dx, dy])
      mean, scale = ds.statistics[subject]
      np.testing.assert_allclose(
          b['video'][i] * scale + mean,
          record['video'][:, dy:dy + 128, dx:dx + 128], atol=1e-3)
      assert b['label'][i] == record['label']
  assert len(offsets) > 10  # Random crops, not a fixed offset.


def test_train_is_deterministic_and_reshuffles(data_dir):
  def first(seed, n=6):
    ds = _make(data_dir, seed=seed)
    return [_decode(b, i) for b in itertools.islice(ds.train, n) for i in range(4)]
  assert first(0) == first(0)
  assert first(0) != first(1)
  # Every epoch covers every training clip once (9 clips; batches straddle).
  order = [idx for _, _, idx in first(0, n=9)]
  for epoch in range(4):
    assert sorted(order[9 * epoch:9 * epoch + 9]) == [0, 1, 2, 3, 4, 200, 201, 202, 203]
  assert order[:9] != order[9:18]


def test_eval_every_example_once_with_padding(data_dir):
  ds = input_pipeline.create_datasets(NAME, data_dir, ['a', 'b'], batch_size=4,
                                      eval_batch_size=3, process_index=0,
                                      process_count=1)
  assert ds.eval.num_examples == 8 and len(ds.eval) == 3
  for _ in range(2):  # Re-iterable.
    batches = list(ds.eval)
    assert len(batches) == 3
    assert all(b['video'].shape == (3, 8, 128, 128, 1) for b in batches)
    ids = [v for b in batches for v, m in zip(b['video_id'], b['mask']) if m]
    assert sorted(ids) == sorted([f'a_v{j}' for j in range(5)] + [f'b_v{j}' for j in range(3)])
    np.testing.assert_array_equal(batches[-1]['mask'], [1, 1, 0])
    for b in batches:
      for i in range(3):
        if b['mask'][i]:
          assert _decode(b, i)[:2] == (8, 8)  # Centre crop.
          # The integer key that lets every process pool clips by video.
          assert ds.eval.video_ids[b['video_index'][i]] == b['video_id'][i]
        else:
          assert b['video_index'][i] == -1
  assert ds.eval.video_ids == sorted(ids)


def test_per_process_sharding(data_dir):
  evals, trains = [], []
  single = input_pipeline.create_datasets(NAME, data_dir, ['a'], batch_size=4,
                                          process_index=0, process_count=1)
  global_batches = [[_decode(b, i) for i in range(4)]
                    for b in itertools.islice(single.train, 5)]
  for p in range(2):
    ds = input_pipeline.create_datasets(NAME, data_dir, ['a'], batch_size=4,
                                        eval_batch_size=8, process_index=p,
                                        process_count=2)
    assert len(ds.eval) == 1  # Same count on every process (3 and 2 clips).
    batches = list(ds.eval)
    assert batches[0]['video'].shape[0] == 4
    evals.append([v for b in batches for v, m in zip(b['video_id'], b['mask']) if m])
    local = list(itertools.islice(ds.train, 5))
    assert local[0]['video'].shape[0] == 2
    trains.append([[_decode(x, i) for i in range(2)] for x in local])
  assert sorted(evals[0] + evals[1]) == [f'a_v{j}' for j in range(5)]
  assert not set(evals[0]) & set(evals[1])
  # Each global training batch (same examples, crops and order) is split
  # into contiguous per-process rows, whatever the process count.
  for j, expected in enumerate(global_batches):
    assert trains[0][j] + trains[1][j] == expected
  with pytest.raises(ValueError, match='divisible'):
    input_pipeline.create_datasets(NAME, data_dir, ['a'], batch_size=3,
                                   process_index=0, process_count=2)


def test_flip_example_mirrors_video_flow_and_landmarks():
  rng = np.random.default_rng(0)
  example = {'video': rng.random((8, 128, 128, 1), np.float32),
             'flow': rng.standard_normal((7, 128, 128, 2)).astype(np.float32),
             'landmarks': rng.uniform(0, 127, (7, 68, 2)).astype(np.float32),
             'label': np.int32(2)}
  # A face-like order: the left eye's outer corner (36) left of the right
  # eye's (45), the mouth corners 48 left of 54.
  example['landmarks'][:, 36, 0], example['landmarks'][:, 45, 0] = 40.0, 90.0
  example['landmarks'][:, 48, 0], example['landmarks'][:, 54, 0] = 50.0, 80.0
  flipped = input_pipeline.flip_example(example)
  np.testing.assert_array_equal(flipped['video'][:, 5, 127 - 9], example['video'][:, 5, 9])
  np.testing.assert_array_equal(flipped['flow'][:, 5, 127 - 9],
                                example['flow'][:, 5, 9] * [-1, 1])
  mirror = input_pipeline.MIRRORED_LANDMARKS
  np.testing.assert_allclose(flipped['landmarks'][:, mirror, 0],
                             127 - example['landmarks'][..., 0])
  np.testing.assert_allclose(flipped['landmarks'][:, mirror, 1], example['landmarks'][..., 1])
  # Still a face in the same landmark order after the mirror.
  assert (flipped['landmarks'][:, 36, 0] < flipped['landmarks'][:, 45, 0]).all()
  assert (flipped['landmarks'][:, 48, 0] < flipped['landmarks'][:, 54, 0]).all()
  assert flipped['label'] == 2
  twice = input_pipeline.flip_example(flipped)
  for key in ('video', 'flow', 'landmarks'):
    np.testing.assert_allclose(twice[key], example[key], atol=1e-5)
  assert sorted(mirror) == list(range(68)) and (mirror[mirror] == np.arange(68)).all()


def test_training_augmentation(data_dir):
  ds = _make(data_dir, flip=True, intensity=0.2)
  flips = 0
  for b in itertools.islice(ds.train, 8):
    for i in range(4):
      flipped = b['flow'][i, 0, 0, 0, 0] < 0
      example = {k: b[k][i] for k in ('video', 'flow', 'landmarks')}
      if flipped:
        flips += 1
        example = input_pipeline.flip_example(example)
      dy, dx, idx = _decode({k: v[None] for k, v in example.items()}, 0)
      record = _record('a' if idx < 100 else 'c', idx % 100)
      np.testing.assert_array_equal(example['flow'],
                                    record['flow'][:, dy:dy + 128, dx:dx + 128])
      mean, scale = ds.statistics['a' if idx < 100 else 'c']
      clean = (record['video'][:, dy:dy + 128, dx:dx + 128] - mean) / scale
      # One gain and one offset for the whole clip, within the configured range.
      gain, offset = np.polyfit(clean.ravel(), example['video'].ravel(), 1)
      assert 0.8 - 1e-4 <= gain <= 1.2 + 1e-4 and -0.2 - 1e-4 <= offset <= 0.2 + 1e-4
      np.testing.assert_allclose(example['video'], gain * clean + offset, atol=1e-4)
  assert 4 <= flips <= 28  # About half of 32.
  # Evaluation is never augmented.
  plain = _make(data_dir)
  for a, b in zip(ds.eval, plain.eval):
    np.testing.assert_array_equal(a['video'], b['video'])


def test_crop_jitter_bounds_training_crops(data_dir):
  # 0: every training crop is the centred evaluation crop (offset 8, 8).
  centred = _make(data_dir, crop_jitter=0)
  for b in itertools.islice(centred.train, 4):
    assert {_decode(b, i)[:2] for i in range(4)} == {(8, 8)}
  # 3: offsets 5..11 on each axis, and more than one of them.
  offsets = set()
  for b in itertools.islice(_make(data_dir, crop_jitter=3).train, 10):
    offsets |= {_decode(b, i)[:2] for i in range(4)}
  assert all(5 <= dy <= 11 and 5 <= dx <= 11 for dy, dx in offsets) and len(offsets) > 5
  with pytest.raises(ValueError, match='crop_jitter'):
    _make(data_dir, crop_jitter=9)


@pytest.mark.parametrize('side', [112, 128, 144])
def test_zoomed_crop_keeps_landmarks_on_the_face_and_scales_flow(side):
  # A bright blob at (x, y) = (70.5, 60.5) in every frame, a landmark on it,
  # and a uniform flow of (1.5, -0.5) px.
  yy, xx = np.mgrid[:144, :144]
  blob = 255 * np.exp(-((xx - 70.5) ** 2 + (yy - 60.5) ** 2) / (2 * 3.0 ** 2))
  record = {'video': np.broadcast_to(blob[None, ..., None], (8, 144, 144, 1)).astype(np.uint8),
            'flow': np.broadcast_to(np.array([1.5, -0.5], np.float16), (7, 144, 144, 2)),
            'landmarks': np.broadcast_to(np.array([70.5, 60.5], np.float32), (8, 68, 2)),
            'label': 2, 'subject': 's', 'video_id': 'v'}
  dy, dx = min(4, 144 - side), (144 - side) // 2
  out = input_pipeline.crop_example(record, dy, dx, {'s': (0.0, 1.0)}, side=side)
  factor = 128 / side
  assert out['video'].shape == (8, 128, 128, 1) and out['flow'].shape == (7, 128, 128, 2)
  np.testing.assert_allclose(out['flow'], np.broadcast_to([1.5 * factor, -0.5 * factor], out['flow'].shape),
                             rtol=1e-3)
  # The blob's centre of mass is where the landmark went.
  image = out['video'][3, ..., 0].astype(np.float64)
  oy, ox = np.mgrid[:128, :128]
  centre = np.array([(image * ox).sum(), (image * oy).sum()]) / image.sum()
  np.testing.assert_allclose(out['landmarks'][2, 5], centre, atol=0.05)
  np.testing.assert_allclose(out['landmarks'][2, 5], [(70.5 - dx + 0.5) * factor - 0.5,
                                                      (60.5 - dy + 0.5) * factor - 0.5], atol=1e-4)
  with pytest.raises(ValueError, match='outside'):
    input_pipeline.crop_example(record, 144 - side + 1, dx, {'s': (0.0, 1.0)}, side=side)


def test_scale_augmentation_zooms_training_crops(data_dir):
  # Landmarks of one record sit on a line with slope 1000 / 1 in x per frame
  # (see _record): their spacing between frames measures the zoom.
  spacings = set()
  for b in itertools.islice(_make(data_dir, crop_jitter=0, scale=0.2).train, 6):
    assert b['video'].shape == (4, 8, 128, 128, 1)
    for i in range(4):
      # float32 landmarks near 1e5 carry about 0.01 px of rounding.
      spacing = float(b['landmarks'][i, 6, 0, 0] - b['landmarks'][i, 0, 0, 0]) / 6
      assert 1 / 1.2 - 0.01 <= 1 / spacing <= 144 / 128 + 0.01
      spacings.add(round(spacing, 2))
  assert len(spacings) > 5
  with pytest.raises(ValueError, match='scale'):
    _make(data_dir, scale=1.0)


@pytest.mark.slow  # Starts a grain worker process (imports the package).
def test_grain_worker_processes_give_the_same_batches(data_dir):
  threads = _make(data_dir, seed=4)
  workers = _make(data_dir, seed=4, grain_workers=1)
  for _ in range(3):
    a, b = next(threads.train), next(workers.train)
    for key in a:
      np.testing.assert_array_equal(a[key], b[key])


@pytest.fixture(scope='module')
def synthetic_dir(tmp_path_factory):
  """A data_dir for synthetic_me/small, which the test that reads it builds."""
  return str(tmp_path_factory.mktemp('tfds'))


def test_training_batches_carry_the_truth_only_when_asked(synthetic_dir):
  config = test_config.get_config()
  config.data_dir = synthetic_dir
  sources.ensure_built([config.dataset], synthetic_dir, build_if_missing=True)
  subjects = input_pipeline.list_subjects('synthetic_me/small', synthetic_dir)
  common = dict(batch_size=2, seed=0, flip=True, process_index=0, process_count=1)
  plain = next(input_pipeline.create_datasets('synthetic_me/small', synthetic_dir, subjects[:1],
                                              **common).train)
  assert 'true_flow' not in plain
  truth = next(input_pipeline.create_datasets('synthetic_me/small', synthetic_dir, subjects[:1],
                                              train_truth=True, **common).train)
  assert truth['true_flow'].shape == truth['flow'].shape == (2, 7, 128, 128, 2)
  assert truth['true_landmarks'].shape == truth['landmarks'].shape
  np.testing.assert_array_equal(truth['flow'], plain['flow'])  # same clips and crops


def test_flip_mirrors_the_truth_with_the_targets():
  rng = np.random.default_rng(3)
  example = {'video': rng.normal(size=(8, 4, 4, 1)).astype(np.float32),
             'flow': rng.normal(size=(7, 4, 4, 2)).astype(np.float32),
             'landmarks': rng.uniform(0, 3, (7, 68, 2)).astype(np.float32)}
  example.update(true_flow=example['flow'] + 1, true_landmarks=example['landmarks'] + 1)
  flipped = input_pipeline.flip_example(example)
  np.testing.assert_allclose(flipped['true_flow'] - np.array([-1, 1]), flipped['flow'],
                             atol=1e-6)
  np.testing.assert_allclose(flipped['true_landmarks'] + np.array([1, -1]),
                             flipped['landmarks'], atol=1e-6)
