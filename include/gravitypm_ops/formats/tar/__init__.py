"""Stream directory trees into a tar archive plus a JSON-lines file index, and restore them safely.

Backup (`archive_tree`) writes two streams at once and never stages either:

- a POSIX **pax** tar stream (readable by GNU tar, bsdtar and Python's tarfile): ustar headers,
  plus a pax extended header where ustar cannot hold a value — long or non-ASCII paths and link
  targets, mtimes before 1970 or after 2242 (as ``mtime=<s>.<ns>``), sizes >= 8 GiB, large ids.
  Headers carry whole-second mtimes; the exact nanoseconds are in the index, from which the
  restore sets them (a by-hand ``tar -x`` gives whole seconds). Archives written before issue 16
  carry a pax mtime on every member: they restore exactly as before.
  Owner/group *names* are left empty: ownership is numeric. Hard links are ``LNKTYPE`` entries
  naming the first path of the inode. Regular files (sparse ones too) are stored as plain data.
- a **file index**, one JSON object per line and per archive entry, in archive order::

    {"path": "dags/a b.py", "type": "file", "size": 120, "mode": 420, "uid": 50000, "gid": 0,
     "mtime_ns": 1764230000123456789, "sha256": "…"}

  ``type`` is file | dir | symlink | hardlink; ``mode`` holds the permission bits (incl.
  setuid/setgid/sticky); symlink and hardlink records add ``target`` (the link text, or the
  archive path of the first link); hardlink records repeat size and sha256 of their content.
  Paths are archive paths: relative, "/"-separated, no trailing "/".

Compression is a separate stage (`compressing_writer`): zstd (multi-threaded) or gzip.

Reading, hashing and compressing overlap: the caller's thread walks, reads (``os.read``
releases the GIL) and hashes (so does hashlib); a thread of ours feeds zstd, whose own worker
threads compress on every core, and writes to the sink. On restore, decompression runs in a
thread ahead of the tar parsing and file writing, and a second process reads each written file
back and checks its sha256 (`hash_check`: off the GIL, on the other core). Headers are built
and parsed here rather than with `tarfile`, whose per-entry cost dominated trees of many small
files.

Memory is bounded by a few MiB of queued chunks plus zstd's buffers, whatever the number or
size of files: directories are read lazily, the index is written as it goes, no tar header is
kept. What does grow: the inodes with several links (backup), and the restored directories'
names and metadata (restore) — in proportion to those, not to the files or bytes.

Nothing here logs file content; messages and reports name paths only.
"""
