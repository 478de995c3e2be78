"""Archive formats, plain Python, no other project import: mongodump archives, tar + zstd, streaming helpers."""
