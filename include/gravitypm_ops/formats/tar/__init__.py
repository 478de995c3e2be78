"""Tar archives of file trees: compression, excludes, a strict writer, a strict reader, safe extraction."""
