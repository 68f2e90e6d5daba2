"""logwarden: audit-ready access-log policy enforcer and anomaly monitor."""

__version__ = "0.1.0"
