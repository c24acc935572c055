"""The run report: ``report.json`` (machine-readable) and ``report.md`` (for people).

The report has a flat summary (``dataset``, ``test_accuracy``, ``params``, ``macs``,
``wall_seconds``, ...) and named sections that pipeline stages add in order: ``training``,
``inspect``, and later ``hardware`` and others. Each section carries its JSON data and its
Markdown rendering, so a new stage extends the report without touching this file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from neurocore.io import atomic_write_json, atomic_write_text


@dataclass
class Section:
    key: str
    title: str
    data: dict[str, Any]
    markdown: str


@dataclass
class Report:
    title: str
    summary: dict[str, Any] = field(default_factory=dict)
    sections: list[Section] = field(default_factory=list)

    def add_section(self, key: str, title: str, data: dict[str, Any], markdown: str) -> None:
        if key in self.summary or any(s.key == key for s in self.sections):
            raise ValueError(f"report already has an entry {key!r}")
        self.sections.append(Section(key, title, data, markdown))

    def to_json(self) -> dict[str, Any]:
        return {**self.summary, **{s.key: s.data for s in self.sections}}

    def to_markdown(self) -> str:
        lines = [f"# {self.title}", "", "| | |", "|---|---|"]
        lines += [f"| {k} | {_fmt(v)} |" for k, v in self.summary.items()]
        for s in self.sections:
            lines += ["", f"## {s.title}", "", s.markdown.rstrip()]
        return "\n".join(lines) + "\n"

    def write(self, run_dir: Path) -> None:
        atomic_write_json(run_dir / "report.json", self.to_json())
        atomic_write_text(run_dir / "report.md", self.to_markdown())


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 1000 else f"{v:,.0f}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return str(v)


def markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(out)
