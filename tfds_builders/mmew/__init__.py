"""mmew dataset."""
