"""Schemathesis hooks for api/tests/schemathesis.rs, loaded through SCHEMATHESIS_HOOKS.

Generated header and cookie values keep to what HTTP can carry: RFC 9110 section 5.5 allows
visible ASCII, space, tab and obs-text (0x80-0xFF) in a field value. Schemathesis' default also
draws control bytes (0x01-0x1F, 0x7F), which actix-http rejects while parsing the request head,
before any of our code runs, with a bodyless 400 that no application error handler can render.
"""

from hypothesis import strategies as st
from schemathesis.specs.openapi import formats

FIELD_VALUE_CHARACTERS = "\t" + "".join(map(chr, range(0x20, 0x7F))) + "".join(map(chr, range(0x80, 0x100)))


def field_values(blacklist_characters: str = "") -> st.SearchStrategy[str]:
    alphabet = [character for character in FIELD_VALUE_CHARACTERS if character not in blacklist_characters]
    # No leading whitespace: `requests` cannot send it.
    return st.text(alphabet=st.sampled_from(alphabet)).map(str.lstrip)


# Replaced in the module too: schemathesis' null-byte probe registers `header_values()` again.
formats.header_values = field_values
formats.register(formats.HEADER_FORMAT, field_values())
