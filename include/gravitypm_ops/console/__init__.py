"""The ops console pages served by plugins/gravitypm_ops_console.py: Checklists, Backups, /metrics."""
