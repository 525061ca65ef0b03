"""Face registration: a clip's face warped onto one reference face shape.

The official eye-based alignment (`faces.alignment_matrix`) fixes position,
roll and scale, but leaves each person's proportions: brows, nose and mouth
of two subjects sit several pixels apart in the aligned frame. A classifier
trained on a handful of subjects then reads motion at the wrong place on a
new face (docs/RESULTS.md measures it). Registration, as the CASME II and SMIC
baselines do it with a model face, removes that: a piecewise-affine warp,
over a triangulation of stable face landmarks (`MESH_POINTS`) and fixed
anchors on the frame border, moves the clip's onset-frame landmarks onto the
reference shape. One warp per clip, computed from the onset frame, so the
expression that follows is carried through unchanged and cannot change the
warp.

The warp cannot fold. The mesh leaves out the landmarks whose order changes
with the expression (inner lips: an open reference mouth against a closed
one; eyelids: a blink), which folded the mesh on real faces (docs/DATA.md
gives the fractions). Should a triangle still turn over (an unusual pose, a
poor detection), the warp is blended towards the similarity transform that
best fits the reference to the landmarks, and the largest blend `strength`
in [0, 1] that keeps every triangle the right way round, with some area, is
used (1: exact registration; 0: that similarity alone).

The reference shape is dlib's 68 landmarks of the one face photograph that
scikit-image ships (`skimage.data.astronaut()`), aligned to the frame like
any clip: a fixed, label-free template that every dataset shares and that
the project computes itself.
"""

from __future__ import annotations

import functools

import numpy as np

from mol_jax import clip_format
from mol_jax.data import faces

# scipy.spatial, matplotlib.tri and skimage.data are imported in the three
# functions that use them: `import mol_jax` loads this module (prediction
# registers faces), and the three would add about 0.5 s to it
# (`python -X importtime -c 'import mol_jax'`), for a mesh built once.

# Border anchors per side; they stay in place, so the warp is the identity on
# the frame border and every pixel lies inside the triangulation.
_ANCHORS_PER_SIDE = 5
# The mesh: brows (17-26), nose (27-35), the four eye corners and the outer
# lips (48-59). Left out: the jaw line (0-16), whose triangles with the
# border anchors are slivers at the chin and which carries no
# micro-expression; the eyelids (37, 38, 40, 41, 43, 44, 46, 47), which meet
# in a blink; and the inner lips (60-67), which cross the outer ones' order
# between an open and a closed mouth (the reference face smiles with its
# mouth open). With them, 5 of 27 real faces and every blink folded the mesh.
MESH_POINTS = np.r_[17:36, 36, 39, 42, 45, 48:60]
MESH_POINTS.flags.writeable = False
# Smallest area a mesh triangle may keep, as a fraction of its area in the
# reference: a triangle squashed flat stretches the pixels beside it without
# bound, which is a fold in all but name.
MIN_AREA_FRACTION = 0.05
# Blend strengths tried, from exact registration (1) to the similarity (0).
_STRENGTHS = np.linspace(0.0, 1.0, 101)


class FoldedWarp(ValueError):
  """Landmarks that no warp can use (not finite)."""


@functools.lru_cache(maxsize=1)
def astronaut_face() -> tuple[np.ndarray, np.ndarray]:
  """scikit-image's face photograph and its dlib landmarks ([512, 512, 3] uint8, [68, 2])."""
  from skimage import data  # pylint: disable=g-import-not-at-top
  image = data.astronaut()
  detector = faces.FaceDetector(upsample=1)
  box = detector.detect(image)
  if box is None:
    raise RuntimeError('dlib found no face in skimage.data.astronaut(); check '
                       'the dlib and scikit-image installs.')
  return image, detector.landmarks(image, box).astype(np.float64)


@functools.lru_cache(maxsize=4)
def reference_shape(size: int = clip_format.STORED_SIZE,
                    box_scale: float = faces.BOX_SCALE) -> np.ndarray:
  """The template: float64 [68, 2] (x, y) in a size x size aligned frame."""
  _, landmarks = astronaut_face()
  shape = faces.transform_points(landmarks, faces.alignment_matrix(landmarks, size, box_scale))
  shape.flags.writeable = False
  return shape


@functools.lru_cache(maxsize=4)
def border_anchors(size: int) -> np.ndarray:
  t = np.linspace(0.0, size - 1.0, _ANCHORS_PER_SIDE)
  first, last = np.zeros_like(t), np.full_like(t, size - 1.0)
  inner = t[1:-1]
  return np.concatenate([
      np.stack([t, first], -1), np.stack([t, last], -1),
      np.stack([first[1:-1], inner], -1), np.stack([last[1:-1], inner], -1)])


@functools.lru_cache(maxsize=4)
def _mesh(size: int, box_scale: float):
  """Triangulation of reference + anchors, and the mesh location of every pixel.

  Returns:
    (vertices [V, 2], triangles int [F, 3], triangle of each pixel [size * size],
    barycentric weights of each pixel [size * size, 3]).
  """
  from scipy import spatial  # pylint: disable=g-import-not-at-top
  vertices = np.concatenate([reference_shape(size, box_scale)[MESH_POINTS],
                             border_anchors(size)])
  mesh = spatial.Delaunay(vertices)
  grid = np.stack(np.meshgrid(np.arange(size), np.arange(size)), -1)
  grid = grid.reshape(-1, 2).astype(np.float64)
  triangle = mesh.find_simplex(grid, tol=1e-9)
  if (triangle < 0).any():
    raise AssertionError('border anchors must enclose every pixel')
  weights = _barycentric(grid, vertices[mesh.simplices[triangle]])
  return vertices, mesh.simplices, triangle, weights


def _barycentric(points: np.ndarray, corners: np.ndarray) -> np.ndarray:
  """Weights of [N, 2] points in their [N, 3, 2] triangles: [N, 3]."""
  a, b, c = corners[:, 0], corners[:, 1], corners[:, 2]
  v0, v1, v2 = b - a, c - a, points - a
  det = v0[:, 0] * v1[:, 1] - v0[:, 1] * v1[:, 0]
  w1 = (v2[:, 0] * v1[:, 1] - v2[:, 1] * v1[:, 0]) / det
  w2 = (v0[:, 0] * v2[:, 1] - v0[:, 1] * v2[:, 0]) / det
  return np.stack([1.0 - w1 - w2, w1, w2], -1)


def _signed_areas(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
  """Twice the signed area of each triangle: [..., V, 2] vertices -> [..., F]."""
  a, b, c = (vertices[..., triangles[:, i], :] for i in range(3))
  return (b - a)[..., 0] * (c - a)[..., 1] - (b - a)[..., 1] * (c - a)[..., 0]


def similarity_fit(source: np.ndarray, target: np.ndarray) -> np.ndarray:
  """`source` [N, 2] moved by the rotation, scale and shift (no reflection)
  that best fit it to `target` [N, 2] in least squares."""
  mean_s, mean_t = source.mean(0), target.mean(0)
  zs = (source - mean_s) @ [1, 1j]
  zt = (target - mean_t) @ [1, 1j]
  scale_rotation = np.vdot(zs, zt) / max(np.vdot(zs, zs).real, 1e-12)
  z = scale_rotation * zs
  return np.stack([z.real, z.imag], -1) + mean_t


def fold_free_strength(reference: np.ndarray, base: np.ndarray, target: np.ndarray,
                       triangles: np.ndarray, anchors: np.ndarray) -> float:
  """Largest s in `_STRENGTHS` such that every mesh on the path base -> base +
  s (target - base) keeps each triangle oriented as in `reference`, with at
  least `MIN_AREA_FRACTION` of its reference area (0.0 when even `base` fails).

  Args:
    reference, base, target: [N, 2] mesh points (without the anchors).
    triangles: [F, 3] indices into the points followed by the anchors.
    anchors: [A, 2] fixed border points.
  """
  reference_areas = _signed_areas(np.concatenate([reference, anchors]), triangles)
  path = base + _STRENGTHS[:, None, None] * (target - base)  # [S, N, 2]
  path = np.concatenate([path, np.broadcast_to(anchors, (len(path),) + anchors.shape)], 1)
  kept = _signed_areas(path, triangles) * np.sign(reference_areas)
  ok = (kept >= MIN_AREA_FRACTION * np.abs(reference_areas)).all(-1)  # [S]
  # The strengths from 0 up to the first failure.
  run = np.cumprod(ok)
  return float(_STRENGTHS[run.sum() - 1]) if run[0] else 0.0


class Registration:
  """The warp of one clip: aligned-frame landmarks of its onset frame -> reference.

  Attributes:
    strength: 1.0 when the onset landmarks land exactly on the reference;
      less when the exact warp would fold and was blended towards the
      similarity fit (module docstring); 0.0 is that similarity alone.
    sample_points: float64 [size, size, 2], where each output pixel samples
      the aligned frame.

  Args:
    landmarks: [68, 2] (x, y) of the clip's first frame, in the aligned frame.
    size, box_scale: of the aligned frame (`clip_format.STORED_SIZE`, `faces.BOX_SCALE`).

  Raises:
    FoldedWarp: landmarks that are not finite.
  """

  def __init__(self, landmarks: np.ndarray, size: int = clip_format.STORED_SIZE,
               box_scale: float = faces.BOX_SCALE):
    landmarks = np.asarray(landmarks, np.float64)
    if landmarks.shape != (clip_format.NUM_LANDMARKS, 2):
      raise ValueError(f'landmarks must be [68, 2], got {landmarks.shape}.')
    if not np.isfinite(landmarks).all():
      raise FoldedWarp('the landmarks are not finite numbers.')
    reference, triangles, triangle, weights = _mesh(size, box_scale)
    anchors = border_anchors(size)
    points = reference[:len(MESH_POINTS)]
    target = landmarks[MESH_POINTS]
    base = similarity_fit(points, target)
    self.strength = fold_free_strength(points, base, target, triangles, anchors)
    if self.strength == 0.0 and fold_free_strength(points, points, base, triangles,
                                                  anchors) < 1.0:
      # The similarity itself would fold against the fixed border (a face
      # far off the aligned frame's centre): the identity, which cannot.
      base = points
    mesh_source = base + self.strength * (target - base)
    source = np.concatenate([mesh_source, anchors])
    self._reference, self._source, self._triangles = reference, source, triangles
    self._finder = None  # Built on first use of `points`.
    # Where each output pixel samples the aligned frame.
    corners = source[triangles[triangle]]
    self.sample_points = np.einsum('nk,nkd->nd', weights, corners).reshape(size, size, 2)

  def __getstate__(self):  # The point finder is rebuilt where it is used.
    return dict(self.__dict__, _finder=None)

  def points(self, points: np.ndarray) -> np.ndarray:
    """Maps [..., 2] aligned-frame points into the registered frame."""
    points = np.asarray(points, np.float64)
    flat = points.reshape(-1, 2)
    if self._finder is None:
      import matplotlib.tri  # pylint: disable=g-import-not-at-top
      self._finder = matplotlib.tri.Triangulation(
          self._source[:, 0], self._source[:, 1], self._triangles).get_trifinder()
    # The triangle that holds each point (a trapezoid map: a dense grid of
    # points costs milliseconds where testing every triangle cost seconds).
    found = np.asarray(self._finder(flat[:, 0], flat[:, 1]))
    mapped = np.empty_like(flat)
    inside = found >= 0
    if inside.any():
      tri = self._triangles[found[inside]]
      weights = _barycentric(flat[inside], self._source[tri])
      mapped[inside] = np.einsum('nk,nkd->nd', weights, self._reference[tri])
    if not inside.all():
      mapped[~inside] = self._nearest_triangle_points(flat[~inside])
    return mapped.reshape(points.shape)

  def _nearest_triangle_points(self, flat: np.ndarray) -> np.ndarray:
    """[N, 2] points outside the mesh, each mapped by the triangle whose
    least barycentric weight is the least negative (the anchors on the frame
    border make such points rare)."""
    corners = self._source[self._triangles]  # [F, 3, 2]
    weights = _barycentric(np.repeat(flat, len(corners), 0),
                           np.tile(corners, (len(flat), 1, 1))).reshape(len(flat), len(corners), 3)
    best = weights.min(-1).argmax(-1)
    chosen = weights[np.arange(len(flat)), best]
    targets = self._reference[self._triangles[best]]
    return np.einsum('nk,nkd->nd', chosen, targets)
