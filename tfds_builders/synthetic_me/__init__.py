"""synthetic_me dataset."""
