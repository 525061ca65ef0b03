"""MEGC 2019 composite set: SMIC-HS + CASME II + SAMM in 3 classes."""

from mol_jax.data import builder, layouts


class Builder(builder.MicroExpressionBuilder):
  """DatasetBuilder for the MEGC 2019 composite set (68 subjects, 442 clips).

  Splits are the subjects prefixed with their database: 'casme2_01',
  'samm_006', 'smic_s1', ...
  """

  name = 'megc2019'

  BUILDER_CONFIGS = builder.class_configs({'3class': layouts.THREE_CLASS})
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Needs the raw data of all three databases (each under its own licence).
  Put them in three sub-folders of --manual_dir, each in the release or the
  official MOL layout of that database (see the casme2, samm and smic
  builders):

    <manual_dir>/casme2/   <manual_dir>/samm/   <manual_dir>/smic/
  """

  def _videos(self, dl_manager):
    entries = []
    for name in ('casme2', 'samm', 'smic'):
      entries += layouts.prefixed(
          layouts.release_or_mol_videos(name, dl_manager, subdir=name), name)
    return entries
