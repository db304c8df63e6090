"""Small shared helpers: atomic files, hashing, clock."""
