"""The page's words for the engine's: errors name the command line's flags (`--force`), the
pages name their controls. One table; every message the studio shows goes through it."""
from __future__ import annotations

import re

# Flag -> the control a person uses on the page for the same thing.
PAGE_WORDS: dict[str, str] = {
    "--force": "replace (tick 'replace existing scripts', or confirm the replace)",
    "--stride": "the stride",
    "--crop": "the crop",
    "--min-amplitude": "min amplitude",
    "--rdp": "RDP",
    "--stretch": "stretch %",
    "--offset": "offset ms",
    "--start": "the start",
    "--end": "the end",
    "--model": "the model",
}
_FLAG = re.compile("|".join(re.escape(flag) for flag in sorted(PAGE_WORDS, key=len,
                                                                reverse=True)) + r"\b")


def page_words(text: str) -> str:
    """text with every command-line flag named as the page's control."""
    return _FLAG.sub(lambda m: PAGE_WORDS[m.group(0)], text)
