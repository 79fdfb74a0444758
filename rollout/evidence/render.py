"""Reports in every format, and writing them where people and CI look.

The renderers are pure (Report -> str) and live one per module beside this one; this
module is their single import point and the only one that touches files.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Final

from rollout.evidence.html import render_html
from rollout.evidence.render_json import SCHEMA_VERSION, render_json
from rollout.evidence.render_junit import render_junit
from rollout.evidence.render_markdown import render_markdown
from rollout.evidence.render_text import render_text
from rollout.evidence.report import Report

__all__ = [
    "FILE_NAMES",
    "SCHEMA_VERSION",
    "append_step_summary",
    "render_html",
    "render_json",
    "render_junit",
    "render_markdown",
    "render_text",
    "write_reports",
]

FILE_NAMES: Final = {
    "json": "report.json",
    "markdown": "report.md",
    "junit": "junit.xml",
    "html": "report.html",
}


def write_reports(report: Report, directory: Path) -> dict[str, Path]:
    """Write report.json, report.md, junit.xml and report.html into `directory` (created if
    missing).

    Each file is written to a temporary file beside it and renamed into place, so a reader
    (or a crash) never sees half a report. Returns the paths by format.
    """
    directory.mkdir(parents=True, exist_ok=True)
    contents = {
        "json": render_json(report),
        "markdown": render_markdown(report),
        "junit": render_junit(report),
        "html": render_html(report),
    }
    paths = {}
    for fmt, content in contents.items():
        path = directory / FILE_NAMES[fmt]
        _write_atomic(path, content)
        paths[fmt] = path
    return paths


def _write_atomic(path: Path, content: str) -> None:
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # errors="replace": a lone surrogate in some label must not cost the whole report
        with os.fdopen(fd, "w", encoding="utf-8", errors="replace") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o644)  # mkstemp makes 0600; reports are meant to be read
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def append_step_summary(report: Report, path: Path) -> None:
    """Append the Markdown report to a GitHub job summary (the file `$GITHUB_STEP_SUMMARY` names).

    Appends, never overwrites: other steps of the job write to the same file.
    """
    markdown = render_markdown(report)
    with path.open("a+b") as handle:  # binary: reading the last byte needs a real offset
        if handle.seek(0, os.SEEK_END) > 0:
            handle.seek(-1, os.SEEK_END)
            markdown = ("\n" if handle.read(1) == b"\n" else "\n\n") + markdown
        handle.write(markdown.encode("utf-8", errors="replace"))
