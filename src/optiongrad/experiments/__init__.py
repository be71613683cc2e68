"""Reproducible experiments run by the `optiongrad` command line."""
