"""How learnable a built set is from its TV-L1 flow alone: a LOSO baseline.

    python -m mol_jax.flow_baseline synthetic_me/demo [--data_dir=DIR] [--grid=8]

Each clip becomes the peak flow magnitude and the summed x/y flow of a
grid x grid pooling of its 7 stored TV-L1 fields; a logistic regression is
trained on all subjects but one and tested on that one (every subject in
turn). It uses no MOL and no pixels, so it measures whether the label is in
the facial motion and how hard the task is, not the network. Needs
scikit-learn (in the `test` extra).
"""

from __future__ import annotations

import argparse

import numpy as np

from mol_jax import input_pipeline
from mol_jax import metrics


def flow_features(flow: np.ndarray, grid: int) -> np.ndarray:
  """[pairs, h, w, 2] -> [3 * grid * grid]: peak magnitude, summed x, summed y."""
  pairs, h, w, _ = flow.shape
  cells = flow.astype(np.float32)[:, :h // grid * grid, :w // grid * grid].reshape(
      pairs, grid, h // grid, grid, w // grid, 2).mean((2, 4))
  magnitude = np.linalg.norm(cells, axis=-1).max(0)
  return np.concatenate([magnitude.ravel(), cells.sum(0).ravel()])


def loso_baseline(dataset: str, data_dir: str | None = None, grid: int = 8) -> dict:
  """Pooled LOSO confusion matrix and metrics of the flow baseline."""
  try:
    from sklearn.linear_model import LogisticRegression  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise SystemExit('mol_jax.flow_baseline needs scikit-learn: pip install -e .[test]') from e
  subjects = input_pipeline.list_subjects(dataset, data_dir)
  source = input_pipeline._source(dataset, data_dir, subjects)  # pylint: disable=protected-access
  features, labels, groups = [], [], []
  for i in range(len(source)):
    example = source[i]
    features.append(flow_features(np.asarray(example['flow']), grid))
    labels.append(int(example['label']))
    groups.append(example['subject'])
  x, y, groups = np.stack(features), np.asarray(labels), np.asarray(groups)
  num_classes = len(input_pipeline.class_names(dataset, data_dir))
  confusion = np.zeros((num_classes, num_classes), np.int64)
  for subject in np.unique(groups):
    test = groups == subject
    model = LogisticRegression(max_iter=2000).fit(x[~test], y[~test])
    np.add.at(confusion, (y[test], model.predict(x[test])), 1)
  return dict(metrics.summarize(confusion), confusion=confusion.tolist())


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('dataset')
  parser.add_argument('--data_dir', default=None)
  parser.add_argument('--grid', type=int, default=8)
  args = parser.parse_args(argv)
  result = loso_baseline(args.dataset, args.data_dir, args.grid)
  print(f"{args.dataset}: TV-L1 flow + logistic regression, LOSO pooled "
        f"UF1 {result['uf1']:.3f}, UAR {result['uar']:.3f}, accuracy {result['accuracy']:.3f}")


if __name__ == '__main__':
  main()
