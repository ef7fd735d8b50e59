"""Finished experiments: see __main__.py."""
