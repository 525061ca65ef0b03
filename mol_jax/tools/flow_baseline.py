"""How learnable a built set is from its motion alone: LOSO linear baselines.

    python -m mol_jax.tools.flow_baseline synthetic_me/demo [--data_dir=DIR] [--grid=8]
        [--features=flow|frame_difference]

`flow` (default): each clip becomes the peak flow magnitude and the summed
x/y flow of a grid x grid pooling of its 7 stored TV-L1 fields.
`frame_difference`: each clip becomes, per cell of a grid x grid pooling of
the normalised evaluation crop (what the network sees), the largest mean
|frame t - frame 0| over t: no flow, only the raw frames. A logistic
regression is trained on all subjects but one and tested on that one
(every subject in turn). It uses no MOL, so it measures whether the label is
in the facial motion and how hard the task is, not the network. Needs
scikit-learn (in the `test` extra).
"""

from __future__ import annotations

import argparse

import numpy as np

from mol_jax.data import input_pipeline
from mol_jax import metrics


def flow_features(flow: np.ndarray, grid: int) -> np.ndarray:
  """[pairs, h, w, 2] -> [3 * grid * grid]: peak magnitude, summed x, summed y."""
  pairs, h, w, _ = flow.shape
  cells = flow.astype(np.float32)[:, :h // grid * grid, :w // grid * grid].reshape(
      pairs, grid, h // grid, grid, w // grid, 2).mean((2, 4))
  magnitude = np.linalg.norm(cells, axis=-1).max(0)
  return np.concatenate([magnitude.ravel(), cells.sum(0).ravel()])


def frame_difference_features(video: np.ndarray, grid: int) -> np.ndarray:
  """[8, h, w] frames -> [grid * grid]: the peak over t of each cell's mean |x_t - x_0|."""
  frames, h, w = video.shape
  change = np.abs(video[1:] - video[:1])[:, :h // grid * grid, :w // grid * grid]
  cells = change.reshape(frames - 1, grid, h // grid, grid, w // grid).mean((2, 4))
  return cells.max(0).ravel()


FEATURES = ('flow', 'frame_difference')


def loso_baseline(dataset: str, data_dir: str | None = None, grid: int = 8,
                  features: str = 'flow') -> dict:
  """Pooled LOSO confusion matrix and metrics of a linear motion baseline."""
  if features not in FEATURES:
    raise ValueError(f'features must be one of {FEATURES}, got {features!r}')
  try:
    from sklearn.linear_model import LogisticRegression  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise SystemExit('mol_jax.tools.flow_baseline needs scikit-learn: pip install -e .[test]') from e
  subjects = input_pipeline.list_subjects(dataset, data_dir)
  rows, labels, groups = [], [], []
  for record, clip in input_pipeline.evaluation_clips(dataset, data_dir, subjects):
    if features == 'flow':
      rows.append(flow_features(np.asarray(record['flow']), grid))
    else:
      rows.append(frame_difference_features(clip['video'][..., 0], grid))
    labels.append(int(record['label']))
    groups.append(record['subject'])
  x, y, groups = np.stack(rows), np.asarray(labels), np.asarray(groups)
  num_classes = len(input_pipeline.class_names(dataset, data_dir))
  confusion = np.zeros((num_classes, num_classes), np.int64)
  per_subject = {}
  for subject in np.unique(groups):
    test = groups == subject
    model = LogisticRegression(max_iter=2000).fit(x[~test], y[~test])
    predictions = model.predict(x[test])
    np.add.at(confusion, (y[test], predictions), 1)
    per_subject[str(subject)] = metrics.summarize(
        metrics.confusion_matrix(y[test], predictions, num_classes))['uf1']
  return dict(metrics.summarize(confusion), confusion=confusion.tolist(),
              per_subject_uf1=per_subject)


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('dataset')
  parser.add_argument('--data_dir', default=None)
  parser.add_argument('--grid', type=int, default=8)
  parser.add_argument('--features', choices=FEATURES, default='flow')
  args = parser.parse_args(argv)
  result = loso_baseline(args.dataset, args.data_dir, args.grid, args.features)
  name = 'TV-L1 flow' if args.features == 'flow' else 'frame differences'
  per_subject = ', '.join(f'{k} {v:.3f}' for k, v in result['per_subject_uf1'].items())
  print(f"{args.dataset}: {name} + logistic regression, LOSO pooled "
        f"UF1 {result['uf1']:.3f}, UAR {result['uar']:.3f}, accuracy {result['accuracy']:.3f}; "
        f"per subject UF1 {per_subject}")


if __name__ == '__main__':
  main()
