"""Safe paths, atomic writes, hashing and safe loading."""
