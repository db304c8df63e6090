"""local_ai package."""
