"""Log rotation with logrotate's semantics: settings, the engine, `tasks.py` for gravitypm_log_rotation."""
