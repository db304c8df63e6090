"""Hydra plugin: the launcher that runs a cosmos-batch multirun as one sweep."""
