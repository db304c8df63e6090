"""Hydra plugin: puts a cosmos-workflow project's manifests/ on the search path."""
