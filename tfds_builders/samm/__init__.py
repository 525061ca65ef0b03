"""samm dataset."""
