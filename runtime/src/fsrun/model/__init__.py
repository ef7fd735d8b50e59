"""The model package: its contract (meta.json and graphs), its headers read without loading, and the parity checks every door shares."""
