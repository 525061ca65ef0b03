"""casme2 dataset."""
