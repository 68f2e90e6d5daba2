"""One error hierarchy for the whole package; every message says where."""


class LogwardenError(Exception):
    """Root of every error logwarden raises on purpose."""


class ConfigError(LogwardenError):
    """A settings, profile or rule document is invalid."""


class ParseError(LogwardenError):
    """A line cannot be parsed in the detected format."""


class TimestampError(ParseError):
    """A line parsed, but its timestamp is missing or unreadable."""
