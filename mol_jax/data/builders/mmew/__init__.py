"""MMEW micro-expressions with the official MOL pre-processing."""

from mol_jax.data import builder, layouts


class Builder(builder.MicroExpressionBuilder):
  """DatasetBuilder for MMEW's micro-expressions (one split per subject)."""

  name = 'mmew'

  BUILDER_CONFIGS = builder.class_configs({'7class': layouts.MMEW_7,
                                            '3class': layouts.THREE_CLASS})
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  MMEW needs a signed licence from its owners (request it at
  www.dpailab.com/database.html); it cannot be downloaded by code. Only the
  micro-expressions are read. Pass the folder that holds them (and the
  sheet, if you have it) as --manual_dir, in any of these layouts:

  * the owners' tree: <manual_dir>/<subject>/<emotion>/<PersonIndex-
    EmotionIndex-SampleIndex>/<N>.jpg (e.g. S03/happiness/S03-01-002/1.jpg);
  * MEB's tree: <manual_dir>/Micro_Expression/<emotion>/<Filename>/<N>.jpg;
  * either, with <manual_dir>/MMEW_Micro_Exp.xlsx (columns Subject,
    Filename, OnsetFrame, ApexFrame, OffsetFrame, Action Units, Estimated
    Emotion, remarks): then the labels and subjects come from the sheet;
  * official MOL: <manual_dir>/<emotion>/<subject>_<sample>/<frames>.

  7class keeps surprise, happiness, disgust, fear, anger, sadness, others
  (MMEW's seventh class, 'others' in the sheet, is the folder `repression/`
  or `others/`); 3class maps happiness -> positive and disgust, fear,
  anger, sadness -> negative (others left out).
  """

  def _videos(self, dl_manager):
    return layouts.release_or_mol_videos('mmew', dl_manager)
