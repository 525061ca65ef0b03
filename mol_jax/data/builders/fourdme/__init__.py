"""4DME micro-expressions (its 2-D gray frames) with the official MOL pre-processing."""

from mol_jax.data import builder, layouts


class Builder(builder.MicroExpressionBuilder):
  """DatasetBuilder for 4DME's gray 2-D modality (one split per subject)."""

  name = 'fourdme'

  BUILDER_CONFIGS = builder.class_configs({'5class': layouts.FOURDME_5,
                                            '3class': layouts.THREE_CLASS})
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  4DME needs a signed licence from its owners (University of Oulu; request
  it through the 4DME page on 6gflagship.com); it cannot be downloaded by
  code. Only the grayscale 2-D frames are read (not the 4D meshes or the
  other video modalities). Pass the folder that holds them and the label
  sheet as --manual_dir, in either layout:

  * release: <manual_dir>/gray_micro/<sub_ID>/<fold_name>/<frames> and
    <manual_dir>/4DME_Labelling_Micro_release v1.xlsx (columns sub_ID,
    fold_name, Emotion, Onset, Apex, Offset, AUs, ...); frames are any
    image files with a number in their name;
  * official MOL: <manual_dir>/<emotion>/<sub_ID>_<fold_name>/<frames>.

  5class keeps surprise, positive, negative, repression, others; 3class
  maps repression -> negative and leaves others out. A clip whose Emotion
  cell names several categories (e.g. 'Surprise+Positive') is skipped as
  ambiguous_label.
  """

  def _videos(self, dl_manager):
    return layouts.release_or_mol_videos('fourdme', dl_manager)
