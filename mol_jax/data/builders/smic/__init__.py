"""SMIC-HS micro-expressions with the official MOL pre-processing."""

from mol_jax.data import builder, layouts


class Builder(builder.MicroExpressionBuilder):
  """DatasetBuilder for SMIC high-speed (16 subjects, one split each)."""

  name = 'smic'

  BUILDER_CONFIGS = builder.class_configs({'3class': layouts.THREE_CLASS})
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  SMIC needs a signed licence from its owners (University of Oulu); it
  cannot be downloaded by code. Pass the folder you received as
  --manual_dir, in either layout:

  * release: <manual_dir>/HS/<subject>/micro/<negative|positive|surprise>/
    <clip>/image<N>.jpg (labels from the folder names);
  * official MOL: <manual_dir>/<emotion>/<subject>_<...>/image<N>.jpg.
  """

  def _videos(self, dl_manager):
    return layouts.release_or_mol_videos('smic', dl_manager)
