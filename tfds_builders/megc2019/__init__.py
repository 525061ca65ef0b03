"""megc2019 dataset."""
