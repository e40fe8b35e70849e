"""User text made safe to show: on a terminal (literally, one line per message) and in HTML.

Anything that comes from a user or a library (spec keys and values, file names, plugin names,
exception text) may hold control characters, ANSI escape sequences, lone surrogates (file names
that are not UTF-8 reach Python as ``\\udcXX``) or characters that reorder a line. Printed as
they are, they recolour the terminal, break a line in two or crash the writer with a
``UnicodeEncodeError``. These helpers are hand-written because no library does exactly this:
``rich`` keeps ESC and most C0 characters, ``html.escape`` keeps surrogates and control
characters, ``repr`` would also quote and escape ordinary quotes and backslashes.
"""

from __future__ import annotations

import html
import re
import unicodedata

# CSI (ESC [ ... final), OSC (ESC ] ... BEL or ESC \), and two-character ESC sequences.
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]|\x9b[0-?]*[ -/]*[@-~]")
# Characters that reorder or break a line ("Trojan Source" bidi controls, line/paragraph separators).
_INVISIBLE = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u2028\u2029\ufeff")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def strip_ansi(text: str) -> str:
    """``text`` without ANSI escape sequences (colours and cursor moves copied from a library's message)."""
    return _ANSI.sub("", text)


def _escape_char(ch: str) -> str:
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (surrogateescape): show the byte
        return f"\\x{code - 0xDC00:02x}"
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}"


def _unsafe(ch: str) -> bool:
    return ch in _INVISIBLE or unicodedata.category(ch) in ("Cc", "Cs", "Co", "Cn")


def printable(text: object, *, newlines: bool = False) -> str:
    """``text`` as one safe line, printed literally: every control character (ESC included),
    surrogate and line-reordering character shown as an escape (``\\x1b``, ``\\n``, ``\\xff``).

    ``newlines=True`` keeps line breaks (multi-line messages such as a spec's problem list).
    Library text should go through :func:`exception_text` or :func:`one_line` first, which drop
    its ANSI colour sequences instead of showing them.
    """
    text = str(text)
    if newlines:
        return "\n".join(printable(line) for line in text.split("\n"))
    if text.isascii() and text.isprintable():
        return text
    return "".join(_escape_char(ch) if _unsafe(ch) else ch for ch in text)


def one_line(text: object) -> str:
    """A multi-line library message folded onto one line (runs of whitespace become one space)."""
    return printable(" ".join(strip_ansi(str(text)).split()))


def exception_text(exc: BaseException) -> str:
    """``Type: message`` of a library's exception, in one safe line (what we quote in our messages)."""
    message = one_line(exc) if str(exc).strip() else ""
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def shorten(text: str, limit: int = 80) -> str:
    """``text`` cut to ``limit`` characters, saying how long it was (values quoted in messages)."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text)} characters)"


def html_text(text: object) -> str:
    """``text`` escaped for HTML (quotes included, for attribute values), line breaks kept."""
    return html.escape(printable(text, newlines=True), quote=True)


__all__ = ["exception_text", "html_text", "one_line", "printable", "shorten", "strip_ansi"]
