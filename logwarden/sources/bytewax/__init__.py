"""Bytewax sources over the plain inputs of ``logwarden.sources``: with ``logwarden.sinks``, the only
modules of the package that import bytewax."""
