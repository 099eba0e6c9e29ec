"""RFC 9110 If-None-Match evaluation and the ETag fingerprint."""

from __future__ import annotations

import pytest

from osmimport.etag import fingerprint, none_match

TAG = '"abc123"'


@pytest.mark.parametrize(
    "header",
    [
        '"abc123"',
        'W/"abc123"',
        ' "abc123" ',
        '"other", "abc123"',
        '"other",W/"abc123"',
        '"a,b", "abc123"',
        '"other", , "abc123",',
        "*",
        " * ",
        ['"other"', '"abc123"'],
    ],
)
def test_matching_headers(header: str | list[str]) -> None:
    assert none_match(header, TAG)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        [],
        '"abc12"',
        "abc123",
        '"ABC123"',
        '"abc123" "other"',
        '"abc123',
        'w/"abc123"',
        '"other", *',
    ],
)
def test_other_headers_do_not_match(header: str | list[str] | None) -> None:
    assert not none_match(header, TAG)


def test_weak_comparison_ignores_the_weak_prefix_on_either_side() -> None:
    assert none_match('"abc123"', 'W/"abc123"')
    assert none_match('W/"abc123"', 'W/"abc123"')


def test_a_comma_inside_a_tag_is_part_of_it() -> None:
    assert none_match('"a,b"', '"a,b"')
    assert not none_match('"a,b"', '"a"')


def test_fingerprint_is_stable_and_keyed() -> None:
    assert fingerprint(b"tile") == fingerprint(b"tile")
    assert len(fingerprint(b"tile")) == 24 and int(fingerprint(b"tile"), 16) >= 0
    assert fingerprint(b"tile", "v1") != fingerprint(b"tile", "v2")
    assert fingerprint(b"tile", "v1") != fingerprint(b"tilf", "v1")
