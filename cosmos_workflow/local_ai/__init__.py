"""Input preparation and input checks: PNG sequences to videos, probing videos (PyAV)."""
