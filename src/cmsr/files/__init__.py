"""Files in and out: image readers and writers, atomic writes."""

from __future__ import annotations

from cmsr.files.readers import (
    MAX_BYTES,
    MAX_CHANNELS,
    MAX_PIXELS,
    SUPPORTED_READ,
    SUPPORTED_WRITE,
    describe,
    read_image,
    same_file,
    write_bytes,
    write_image,
    write_text,
)

__all__ = [
    "MAX_BYTES",
    "MAX_CHANNELS",
    "MAX_PIXELS",
    "SUPPORTED_READ",
    "SUPPORTED_WRITE",
    "describe",
    "read_image",
    "same_file",
    "write_bytes",
    "write_image",
    "write_text",
]
