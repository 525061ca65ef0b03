"""Micro-expression metrics from a confusion matrix pooled over LOSO folds.

Every metric treats an undefined ratio (a class never predicted, or absent
from the ground truth) as 0, as MER papers and the official code do, and
averages over all classes of the protocol.
"""

from __future__ import annotations

import numpy as np


def confusion_matrix(labels, predictions, num_classes: int, mask=None) -> np.ndarray:
  """[C, C] counts, rows = true class, columns = predicted class."""
  labels = np.asarray(labels, np.int64).reshape(-1)
  predictions = np.asarray(predictions, np.int64).reshape(-1)
  if mask is not None:
    keep = np.asarray(mask).reshape(-1) > 0
    labels, predictions = labels[keep], predictions[keep]
  return np.bincount(labels * num_classes + predictions,
                     minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def _safe_divide(a, b):
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return np.divide(a, b, out=np.zeros_like(a), where=b > 0)


def summarize(confusion: np.ndarray) -> dict[str, float]:
  """accuracy (= WAR), UAR, UF1, WF1 and per-class recall/F1."""
  confusion = np.asarray(confusion, np.float64)
  true_positive = np.diag(confusion)
  support = confusion.sum(axis=1)
  predicted = confusion.sum(axis=0)
  recall = _safe_divide(true_positive, support)
  precision = _safe_divide(true_positive, predicted)
  f1 = _safe_divide(2 * precision * recall, precision + recall)
  total = support.sum()
  return {
      'accuracy': float(true_positive.sum() / total) if total else 0.0,
      'war': float(true_positive.sum() / total) if total else 0.0,
      'uar': float(recall.mean()),
      'uf1': float(f1.mean()),
      'wf1': float((f1 * support).sum() / total) if total else 0.0,
      'per_class_recall': recall.tolist(),
      'per_class_f1': f1.tolist(),
      'num_examples': int(total),
  }
