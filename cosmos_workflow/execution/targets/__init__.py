"""execution.targets."""
