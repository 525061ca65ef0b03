"""fourdme dataset."""
