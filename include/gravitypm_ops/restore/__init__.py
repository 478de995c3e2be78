"""Restores (database, files): `plan.py` checks every param before anything changes, `apply.py` restores."""
