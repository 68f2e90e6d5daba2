"""Bytewax dataflows. Only this package, ``logwarden.sources.bytewax`` and ``logwarden.sinks`` import bytewax."""
