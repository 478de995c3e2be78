"""Backups into the vault: MongoDB (mongodump archive), files (tar + index), rotated logs; `tasks.py` for the DAGs."""
