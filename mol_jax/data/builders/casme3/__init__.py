"""CAS(ME)^3 Part A micro-expressions with the official MOL pre-processing."""

from mol_jax.data import builder, layouts


class Builder(builder.MicroExpressionBuilder):
  """DatasetBuilder for CAS(ME)^3 Part A (one split per subject, 'spNO1' ...).

  Every row of the label sheet is one micro-expression inside a task video;
  its example(s) are sampled from the frames numbered Onset..Offset.
  """

  name = 'casme3'

  # Part A is filmed at about 30 fps: many micro-expressions span fewer
  # than 8 frames, and would be lost; they give one clip of their frames
  # evenly spaced, some repeated (`preprocess.short_clip_indices`).
  BUILDER_CONFIGS = builder.class_configs({'7class': layouts.CASME3_7,
                                            '4class': layouts.CASME3_4,
                                            '3class': layouts.THREE_CLASS},
                                           stretch_short_videos=True)
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  CAS(ME)^3 needs a signed licence from its owners (Institute of Psychology,
  Chinese Academy of Sciences; request it through the CAS(ME)^3 page linked
  from github.com/jingtingEmmaLi/CAS-ME-3); it cannot be downloaded by code.
  Only Part A (labelled micro-expressions, colour frames) is read. Pass the
  folder that holds Part A and its label sheet as --manual_dir, in either
  layout:

  * release: <manual_dir>/cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx (columns
    Subject, Filename, Onset, Apex, Offset, AU, Objective class, emotion)
    and the frames <manual_dir>/[part_A_split/]part_A/<Subject>/<task>/
    color/<N>.jpg (e.g. part_A/spNO.1/a/color/355.jpg; the part_A level may
    also be left out);
  * official MOL: <manual_dir>/<emotion>/<subject>_<clip>/<frames>, one
    folder per micro-expression (e.g. disgust/spNO1_e2/...).

  7class keeps surprise, happiness, disgust, fear, anger, sadness, others;
  4class maps happiness -> positive and disgust, fear, anger, sadness ->
  negative and keeps others; 3class is 4class without others. A
  micro-expression of 2 to 7 frames gives one clip of 8 with some frames
  repeated (the other builders skip such videos).
  """

  @classmethod
  def training_config_file(cls):
    return 'casme3_7cls.py'

  def _videos(self, dl_manager):
    return layouts.release_or_mol_videos('casme3', dl_manager)
