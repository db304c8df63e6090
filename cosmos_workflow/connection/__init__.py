"""connection package."""
