"""The raw layouts and class maps (`mol_jax.data.layouts`): every release's
sheets and folders, on the builders' dummy data and on trees made here, and
the class order the docs give."""

import os

import pytest

from mol_jax.data import layouts
from mol_jax.data import preprocess
from tests import REPO

BUILDERS = os.path.join(REPO, 'tfds_builders')


def test_class_maps():
  assert layouts.map_emotion('Happiness', layouts.THREE_CLASS) == 'positive'
  assert layouts.map_emotion('repression', layouts.THREE_CLASS) == 'negative'
  assert layouts.map_emotion('Other', layouts.THREE_CLASS) is None
  assert layouts.map_emotion('Other', layouts.SAMM_5) == 'others'
  assert layouts.map_emotion('fear', layouts.CASME2_5) is None
  assert layouts.map_emotion('disgust', layouts.SAMM_5) is None
  with pytest.raises(KeyError):
    layouts.map_emotion('tense', layouts.THREE_CLASS)
  # Sets with the valence classes group the fine emotions; a fine emotion
  # that is a class of its own keeps its name.
  assert layouts.map_emotion('sad', layouts.CASME3_4) == 'negative'
  assert layouts.map_emotion('Others', layouts.CASME3_4) == 'others'
  assert layouts.map_emotion('happy', layouts.CASME3_7) == 'happiness'
  assert layouts.map_emotion('anger', layouts.CASME3_7) == 'anger'
  assert layouts.map_emotion('contempt', layouts.CASME3_7) is None
  assert layouts.map_emotion('Repression', layouts.FOURDME_5) == 'repression'
  assert layouts.map_emotion('disgust', layouts.FOURDME_5) == 'negative'
  assert layouts.map_emotion('repression', layouts.THREE_CLASS) == 'negative'


def test_mol_layout_subjects():
  _, entries = layouts.find_videos(
      'samm', os.path.join(BUILDERS, 'samm', 'dummy_data', 'mol'))
  by_id = {e.video_id: e for e in entries}
  assert by_id['006_1_2'].subject == '006'
  assert by_id['006_1_2'].emotion == 'happiness'


def test_release_sheets():
  layout, entries = layouts.find_videos(
      'casme2', os.path.join(BUILDERS, 'casme2', 'dummy_data', 'release'))
  assert layout == 'release'
  e = {x.video_id: x for x in entries}['01_EP01_01']
  assert (e.subject, e.emotion) == ('01', 'happiness')  # Subject 1 -> '01'.
  assert e.folder.endswith(os.path.join('CASME2_RAW_selected', 'sub01', 'EP01_01'))
  # SAMM: 13 free-text rows before the header.
  layout, entries = layouts.find_videos(
      'samm', os.path.join(BUILDERS, 'samm', 'dummy_data', 'release'))
  assert layout == 'release'
  e = {x.video_id: x for x in entries}['007_3_2']
  assert (e.subject, e.emotion) == ('007', 'Other')
  layout, entries = layouts.find_videos(
      'smic', os.path.join(BUILDERS, 'smic', 'dummy_data', 'release'))
  assert layout == 'release'
  assert {(x.subject, x.emotion) for x in entries} >= {('s1', 'negative'),
                                                       ('s2', 'surprise')}


def test_bad_sheet_and_missing_root_name_the_path(tmp_path):
  import openpyxl  # pylint: disable=g-import-not-at-top
  book = openpyxl.Workbook()
  book.active.append(['Name', 'Clip'])
  sheet = tmp_path / 'CASME2-coding-x.xlsx'
  book.save(sheet)
  (tmp_path / 'CASME2_RAW_selected').mkdir()
  with pytest.raises(ValueError, match='CASME2-coding-x.xlsx'):
    layouts.find_videos('casme2', str(tmp_path))
  with pytest.raises(FileNotFoundError, match='nope'):
    layouts.find_videos('smic', str(tmp_path / 'nope'))
  (tmp_path / 'empty').mkdir()
  with pytest.raises(FileNotFoundError, match='no videos'):
    layouts.find_videos('smic', str(tmp_path / 'empty'))


def test_casme3_rows_are_ranges_of_task_videos():
  layout, entries = layouts.find_videos(
      'casme3', os.path.join(BUILDERS, 'casme3', 'dummy_data', 'release'))
  assert layout == 'release'
  by_id = {e.video_id: e for e in entries}
  # Four rows on one task video: suffixes in sheet order, one folder.
  assert [(by_id[v].onset, by_id[v].offset)
          for v in ('spNO1_a', 'spNO1_a2', 'spNO1_a3', 'spNO1_a4')] == [
              (1, 10), (14, 23), (26, 30), (32, 32)]
  assert by_id['spNO1_a'].folder == by_id['spNO1_a2'].folder
  assert by_id['spNO1_a'].folder.endswith(os.path.join('part_A', 'spNO.1', 'a', 'color'))
  assert by_id['spNO1_a'].subject == 'spNO1'
  assert by_id['spNO2_j'].folder.endswith(os.path.join('spNO.2', 'j', 'color'))  # 'J'.
  # Offset 0: the owners' full file gives 1845 for the first such row; the
  # second row's 2403 lies before its onset, so it is skipped, not guessed.
  assert (by_id['spNO40_e'].onset, by_id['spNO40_e'].offset) == (1838, 1845)
  assert by_id['spNO40_e2'].skip_reason == preprocess.INVALID_RANGE
  assert "Onset cell '/'" in by_id['spNO40_f'].skip_detail


def _sheet(path, header, rows):
  import openpyxl  # pylint: disable=g-import-not-at-top
  book = openpyxl.Workbook()
  book.active.append(header)
  for row in rows:
    book.active.append(row)
  book.save(path)


@pytest.mark.parametrize('frames', ['part_A_split/part_A', 'part_A', ''])
def test_casme3_frame_roots_and_loose_folder_names(tmp_path, frames):
  root = tmp_path / 'casme3'
  base = root / frames if frames else root
  (base / 'spNO210' / 'c' / 'color').mkdir(parents=True)  # No dot, as some copies.
  (base / 'spNO.216' / 'd' / 'color').mkdir(parents=True)
  _sheet(root / 'CAS(ME)3_part_A_ME_label_JpgIndex_v2.xlsx',
         ['Subject', 'Filename', 'Onset', 'Apex', 'Offset', 'AU', 'Objective class', 'emotion'],
         [['spNO.210', 'c', 10, 12, 20, '4', 'III', 'fear'],
          ['spNO.216', 'd', 3647, 2650, 2660, '4', 'III', 'sad'],
          [None, None, None, None, None, None, None, None],
          ['spNO.216', 'e', 0, 0, 9, '4', 'III', 'Others']])
  _, entries = layouts.find_videos('casme3', str(root))
  c, d, e = entries
  assert c.folder == str(base / 'spNO210' / 'c' / 'color') and c.subject == 'spNO210'
  assert (d.onset, d.offset) == (2647, 2660)  # The owners' onset.
  assert (e.onset, e.offset, e.video_id) == (0, 9, 'spNO216_e')


def test_casme3_frames_without_the_sheet_name_it(tmp_path):
  (tmp_path / 'part_A' / 'spNO.1' / 'a' / 'color').mkdir(parents=True)
  with pytest.raises(FileNotFoundError, match='JpgIndex_v2.xlsx'):
    layouts.find_videos('casme3', str(tmp_path))


def test_fourdme_emotion_cells():
  entries = layouts.scan_fourdme_release(
      os.path.join(BUILDERS, 'fourdme', 'dummy_data', 'release'))
  by_id = {e.video_id: e for e in entries}
  assert by_id['S02_1st_004_01_1'].skip_reason == preprocess.AMBIGUOUS_LABEL
  assert 'Surprise+Positive' in by_id['S02_1st_004_01_1'].skip_detail
  assert by_id['S02_1st_002_01_1'].emotion == 'repression'
  assert by_id['S01_1st_001_01_1'].folder.endswith(
      os.path.join('gray_micro', 'S01', 'S01_1st_001_01_1'))
  for cell in ('fear/disgust', 'happy + surprise', 'Negative, Repression'):
    assert len({layouts.normalise_emotion(c) for c in layouts._SEVERAL.split(cell)}) == 2


def test_mmew_trees_with_and_without_the_sheet(tmp_path):
  # The owners' tree without a sheet: labels and subjects from the folders.
  root = tmp_path / 'mmew'
  for sample in ('S03/happiness/S03-01-002', 'S04/repression/S04-07-001'):
    (root / sample).mkdir(parents=True)
  layout, entries = layouts.find_videos('mmew', str(root))
  assert layout == 'release'
  assert {(e.subject, e.video_id, e.emotion) for e in entries} == {
      ('S03', 'S03-01-002', 'happiness'), ('S04', 'S04-07-001', 'others')}
  # MEB's tree with the sheet: rows found by Filename, labels from the sheet.
  meb = tmp_path / 'meb'
  (meb / 'Micro_Expression' / 'repression' / 'S05-07-001').mkdir(parents=True)
  _sheet(meb / 'MMEW_Micro_Exp.xlsx',
         ['Subject', 'Filename', 'OnsetFrame', 'ApexFrame', 'OffsetFrame', 'Action Units',
          'Estimated Emotion', 'remarks'],
         [['S05', 'S05-07-001', 1, 5, 9, 'AU4', 'others', ''],
          ['S05', 'S05-02-001', 1, 5, 9, 'AU1+AU2', 'surprise', '']])
  _, entries = layouts.find_videos('mmew', str(meb))
  found, missing = entries
  assert found.folder == str(meb / 'Micro_Expression' / 'repression' / 'S05-07-001')
  assert (found.subject, found.emotion) == ('S05', 'others')
  assert missing.folder == str(meb / 'Micro_Expression' / 'surprise' / 'S05-02-001')


def test_docs_name_the_classes_in_label_order():
  """A user copies class names from the docs: a swapped order would silently
  swap two classes in every prediction."""
  text = open(os.path.join(REPO, 'docs', 'TRAINING.md')).read()
  configs = text.split('\n## Configs\n')[1].split('\n## ')[0]  # The table of configs.
  rows = [line for line in configs.splitlines()
          if line.startswith('| `') and ('3class' in line or 'synthetic_me' in line)]
  assert len(rows) == 8
  for row in rows:
    names = row.split('|')[3].split('(')[0].strip()
    assert names == ', '.join(layouts.THREE_CLASS), row
  for config in ('smic.py', 'casme2_3cls.py', 'demo.py'):
    text = open(os.path.join(REPO, 'configs', config)).read()
    assert ', '.join(layouts.THREE_CLASS) in text, config
