"""Validation problems and the report that collects them. Standard library only: the GUI shows these directly."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field, replace

ERROR = "error"  # the row is skipped
WARNING = "warning"  # the row is kept (possibly changed, e.g. truncated)

# Keep memory bounded on huge, badly broken files; counts stay exact.
MAX_LISTED_PROBLEMS = 10_000


@dataclass(frozen=True)
class Problem:
    """One problem in one row. ``row`` counts records from 1; ``line`` is the file line where known (JSONL, CSV)."""

    row: int
    field: str
    code: str
    message: str
    severity: str = ERROR
    line: int | None = None

    def location(self) -> str:
        where = f"row {self.row}" if self.line is None else f"row {self.row} (line {self.line})"
        return f"{where}, field '{self.field}'" if self.field else where

    def __str__(self) -> str:
        return f"{self.severity}: {self.location()}: {self.message}"


@dataclass
class Report:
    """Every problem found, plus totals. Rows with an error are skipped and counted, never dropped silently."""

    rows_read: int = 0
    rows_usable: int = 0
    problems: list[Problem] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)  # code -> number of problems
    skipped_rows: set[int] = field(default_factory=set)
    lines: dict[int, int] = field(default_factory=dict, repr=False)  # row -> file line, where the file has lines

    def add(self, problem: Problem) -> None:
        if problem.line is None and problem.row in self.lines:
            problem = replace(problem, line=self.lines[problem.row])
        self.counts[problem.code] += 1
        if problem.severity == ERROR:
            self.skipped_rows.add(problem.row)
        if len(self.problems) < MAX_LISTED_PROBLEMS:
            self.problems.append(problem)

    @property
    def rows_skipped(self) -> int:
        return len(self.skipped_rows)

    @property
    def errors(self) -> int:
        return sum(1 for p in self.problems if p.severity == ERROR)

    def summary(self) -> str:
        parts = [f"{self.rows_read} rows read", f"{self.rows_usable} usable", f"{self.rows_skipped} skipped"]
        if self.counts:
            parts.append(", ".join(f"{code}: {n}" for code, n in sorted(self.counts.items())))
        return "; ".join(parts)

    def to_dict(self) -> dict:
        return {
            "rows_read": self.rows_read,
            "rows_usable": self.rows_usable,
            "rows_skipped": self.rows_skipped,
            "skipped_rows": sorted(self.skipped_rows),
            "counts": dict(sorted(self.counts.items())),
            "problems": [asdict(p) for p in self.problems],
            "problems_listed": len(self.problems),
            "problems_total": sum(self.counts.values()),
        }

    @classmethod
    def from_dict(cls, data: dict) -> "Report":
        report = cls(rows_read=data["rows_read"], rows_usable=data["rows_usable"])
        report.problems = [Problem(**p) for p in data["problems"]]
        report.counts = Counter(data["counts"])
        report.skipped_rows = set(data["skipped_rows"])
        return report
