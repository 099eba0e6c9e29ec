"""Entity tags: a stable fingerprint of bytes and RFC 9110 ``If-None-Match`` evaluation."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

#: One element of a list: an entity-tag (weakness prefix, quoted opaque tag) or nothing (lists
#: may hold empty elements), then a comma or the end.
_ELEMENT = re.compile(r'\s*(?:(?:W/)?("[\x21\x23-\x7e\x80-\xff]*"))?\s*(?:,|$)')


def fingerprint(data: bytes, key: str = "") -> str:
    """A hex digest of ``data`` (keyed, e.g. by the data version): the same in every process."""
    return hashlib.blake2b(data, digest_size=12, key=key.encode()[:64]).hexdigest()


def none_match(header: str | Iterable[str] | None, etag: str) -> bool:
    """Whether ``If-None-Match`` matches ``etag`` (a quoted tag, ``W/`` allowed), so a GET or
    HEAD is answered 304 (RFC 9110 13.1.2).

    ``*`` matches any current representation; a list matches when one of its tags is equal by
    the weak comparison (opaque tags equal, ``W/`` ignored on either side). Several header
    lines count as one list. A malformed field is ignored (no match), as the RFC allows.
    """
    if header is None:
        return False
    text = header if isinstance(header, str) else ", ".join(header)
    text = text.strip()
    if not text:
        return False
    if text == "*":
        return True
    wanted = etag.removeprefix("W/")
    position = 0
    tags: set[str | None] = set()
    while position < len(text):
        found = _ELEMENT.match(text, position)
        if found is None or found.end() == position:
            return False
        tags.add(found.group(1))
        position = found.end()
    return wanted in tags
