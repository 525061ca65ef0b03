"""smic dataset."""
