"""Object ids: BLAKE3 digests of content, written as 64 lowercase hex digits."""

from __future__ import annotations

import re
from typing import NewType

import blake3

Oid = NewType("Oid", str)
"""The id of an object: the BLAKE3 hash of its uncompressed bytes, as 64 hex digits."""

OID_HEX_LEN = 64
_OID_RE = re.compile(r"[0-9a-f]{64}\Z")
_PREFIX_RE = re.compile(r"[0-9a-f]{4,64}\Z")


def hash_bytes(data: bytes | bytearray | memoryview) -> Oid:
    """Return the id of ``data``.

    Large buffers are hashed with several threads (BLAKE3 parallelises within one input), which
    releases the GIL.
    """
    if len(data) >= 1 << 20:
        return Oid(blake3.blake3(data, max_threads=blake3.blake3.AUTO).hexdigest())
    return Oid(blake3.blake3(data).hexdigest())


def is_oid(text: str) -> bool:
    """Whether ``text`` is a full, well-formed object id."""
    return bool(_OID_RE.match(text))


def is_oid_prefix(text: str) -> bool:
    """Whether ``text`` could be read as an abbreviated id (4 to 64 lowercase hex digits)."""
    return bool(_PREFIX_RE.match(text))


def check_oid(text: str) -> Oid:
    """Return ``text`` as an :data:`Oid`, raising ``ValueError`` when it is not one."""
    if not is_oid(text):
        raise ValueError(f"not an object id: {text!r}")
    return Oid(text)
