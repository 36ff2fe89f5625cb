"""MkDocs hook: on the CLI reference, a command's examples stay one per line, as ``neuromap CMD --help`` prints
them, instead of being rewrapped into one paragraph.

click keeps a help paragraph marked ``\\b`` as written; mkdocs-click drops that marker and writes the paragraph as
Markdown, where its indented lines join the label line (``<p>Examples:\\n  neuromap demo\\n  ...</p>``). On the
CLI page only (all of it generated from the commands), such a paragraph becomes its label and a code block.
"""
from __future__ import annotations

import re
from typing import Any

CLI_PAGE = "cli.md"
# a paragraph: a label line ending in ":" and only indented lines after it
_LABELLED_LINES = re.compile(r"<p>([^<\n]+:)\n((?:[ ]{2,}[^\n]*(?:\n|(?=</p>)))+)</p>")


def _preformatted(match: re.Match[str]) -> str:
    lines = match.group(2).rstrip("\n").split("\n")
    indent = min(len(line) - len(line.lstrip(" ")) for line in lines)
    body = "\n".join(line[indent:] for line in lines)
    return f"<p>{match.group(1)}</p>\n<pre><code>{body}</code></pre>"


def on_page_content(html: str, page: Any, **kwargs: Any) -> str:
    if page.file.src_uri != CLI_PAGE:
        return html
    return _LABELLED_LINES.sub(_preformatted, html)
