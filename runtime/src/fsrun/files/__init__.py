"""Everything fsrun writes and how safely: atomic writes, locks, claims, output checks, funscripts, the embedding cache, content fingerprints."""
