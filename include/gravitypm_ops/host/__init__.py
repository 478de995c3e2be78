"""The production host: health / disk / memory probes and service control (stop, start, restart logging)."""
