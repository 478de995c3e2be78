"""Evidence collectors, one module per domain; `registry.py` maps an Item's `collector` to its function."""
