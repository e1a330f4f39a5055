"""The performance benchmark of the template against a bare Flask baseline (see README.md)."""
