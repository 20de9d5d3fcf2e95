"""Atomic file writes: write to a temporary sibling, then rename into place, so nothing half-written
ever looks finished and an interrupted write never destroys the previous file."""

from medlearn.io.atomic import atomic_path, write_bytes, write_json, write_text

__all__ = ["atomic_path", "write_bytes", "write_json", "write_text"]
