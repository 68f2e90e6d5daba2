"""Bytewax connectors: the only modules of the package that import bytewax."""
