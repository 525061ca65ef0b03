"""CASME II micro-expressions with the official MOL pre-processing."""

from mol_jax.data import builder, layouts


class Builder(builder.MicroExpressionBuilder):
  """DatasetBuilder for CASME II (25 subjects, one split each)."""

  name = 'casme2'

  BUILDER_CONFIGS = builder.class_configs({'5class': layouts.CASME2_5,
                                            '3class': layouts.THREE_CLASS})
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  CASME II needs a signed licence from its owners (Institute of Psychology,
  Chinese Academy of Sciences); it cannot be downloaded by code. Pass the
  folder you received as --manual_dir, in either layout:

  * release: <manual_dir>/CASME2_RAW_selected/sub<NN>/<Filename>/img<N>.jpg
    and <manual_dir>/CASME2-coding-*.xlsx (columns Subject, Filename,
    Estimated Emotion, ...);
  * official MOL: <manual_dir>/<emotion>/<NN>_<Filename>/img<N>.jpg.

  5class keeps surprise, happiness, disgust, repression, others (fear and
  sadness are skipped); 3class maps happiness -> positive and disgust,
  repression, fear, sadness -> negative (others skipped).
  """

  def _videos(self, dl_manager):
    return layouts.release_or_mol_videos('casme2', dl_manager)
