"""SAMM micro-expressions with the official MOL pre-processing."""

from mol_jax.data import builder, layouts


class Builder(builder.MicroExpressionBuilder):
  """DatasetBuilder for SAMM (one split per subject, '006' ... '037')."""

  name = 'samm'

  BUILDER_CONFIGS = builder.class_configs({'5class': layouts.SAMM_5,
                                            '3class': layouts.THREE_CLASS})
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  SAMM needs a signed licence from its owners (Manchester Metropolitan
  University); it cannot be downloaded by code. Pass the folder you received
  as --manual_dir, in either layout:

  * release: <manual_dir>/SAMM/<subject>/<Filename>/<subject>_<N>.jpg and
    <manual_dir>/SAMM_Micro_FACS_Codes_v2.xlsx (13 lines of text, then the
    header Subject, Filename, ..., Estimated Emotion);
  * official MOL: <manual_dir>/<emotion>/<Filename>/<subject>_<N>.jpg.

  5class keeps surprise, happiness, anger, contempt, others (disgust, fear,
  sadness skipped); 3class maps happiness -> positive and anger, contempt,
  disgust, fear, sadness -> negative (others skipped).
  """

  def _videos(self, dl_manager):
    return layouts.release_or_mol_videos('samm', dl_manager)
