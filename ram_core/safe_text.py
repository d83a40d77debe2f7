"""Text from files (class names, labels, file names, error messages that quote them) made safe to show.

plain(): for a terminal or a log: control characters (ANSI escapes that clear the screen or move the
cursor, carriage returns that overwrite a line, newlines that fake another message) and bidirectional
overrides become visible escapes.  md(): for Streamlit markdown (st.markdown, st.error, captions): the
same, plus the markdown characters that make links, images, HTML, Streamlit directives, maths and
emphasis backslash-escaped, so a class named `[click](http://evil)` or `:red[alert]` shows as typed.
"""

from __future__ import annotations

import re

# C0 controls, DEL, C1 controls, and the Unicode bidirectional overrides/isolates ("Trojan source")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]")
# what can make a link, an image, HTML, a coloured directive (:red[...]), maths, a table or emphasis
_MARKDOWN = re.compile(r"([\\`*_\[\]<>#|~$])")


def _escape_control(match: re.Match) -> str:
    ch = match.group(0)
    named = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
    return named.get(ch, f"\\x{ord(ch):02x}" if ord(ch) < 256 else f"\\u{ord(ch):04x}")


def plain(text: object) -> str:
    """str(text) with control and bidi characters shown as escapes (\\x1b, \\n, \\u202e)."""
    return _CONTROL.sub(_escape_control, str(text))


def plain_lines(text: object) -> str:
    """As plain(), but keeping line breaks (a multi-line message of our own)."""
    return "\n".join(plain(line) for line in str(text).split("\n"))


def md(text: object) -> str:
    """Text shown literally inside Streamlit markdown."""
    return _MARKDOWN.sub(r"\\\1", plain(text))


def code(text: object) -> str:
    """Text inside `inline code` (backticks cannot close it early)."""
    return plain(text).replace("`", "'")


def unmd(text: str) -> str:
    """md() undone: the text a reader sees (for tests and logs)."""
    return re.sub(r"\\([\\`*_{}\[\]()#+!|<>~:$])", r"\1", text)
