"""casme3 dataset."""
