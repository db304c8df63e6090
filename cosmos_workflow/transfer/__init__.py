"""Moving input and output files, always verified by sha256."""
