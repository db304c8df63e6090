"""Model adapters: one per Cosmos program (and the simulated model)."""
