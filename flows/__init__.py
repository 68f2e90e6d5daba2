"""Bytewax dataflows. Only this package and ``logwarden.connectors`` import bytewax."""
