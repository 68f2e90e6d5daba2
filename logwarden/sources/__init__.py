"""Log inputs: every way logwarden reads raw lines, as chunks with their source name and line numbers.

- ``files``: files and stdin (``RawChunk``, ``LineReader``), format sniffing, ``resolve_inputs``;
- ``watch``: directories and globs followed across rotations (``DirectoryWatcher``);
- ``redis_streams``: Redis Streams, the URL, reading entries as chunks, and ``ship``;
- ``kafka``: Kafka, the URL, and messages as chunks.

These are plain Python. The Bytewax sources that wrap them live in ``logwarden.sources.bytewax``,
the only part of this package that imports bytewax; it is not imported from here, so reading an
input does not load the engine.
"""

from __future__ import annotations

from logwarden.sources.files import LineReader, RawChunk, resolve_inputs, sniff_file

__all__ = ["LineReader", "RawChunk", "resolve_inputs", "sniff_file"]
