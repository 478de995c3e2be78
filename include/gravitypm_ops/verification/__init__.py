"""Backup verification: artifacts re-read and hashed, trial restores compared with the manifest."""
