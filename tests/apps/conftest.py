"""Fixtures shared by the apps tests: odd image files."""

import struct
import zlib

import pytest


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data)
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def png_header(width: int, height: int) -> bytes:
    """A few hundred bytes of PNG whose header claims `width` x `height` grey
    pixels: enough for a reader to refuse it by size, nothing to decode."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + _chunk(b"IEND", b"")
    )


@pytest.fixture
def huge_png(tmp_path):
    """A 'decompression bomb': a PNG claiming 20000 x 20000 pixels (400 MP)."""
    path = tmp_path / "huge.png"
    path.write_bytes(png_header(20_000, 20_000))
    return path
