"""Grades out to a learning management system: Canvas's gradebook import.

Canvas imports a CSV whose first columns identify the student (``Student, ID, SIS User ID, SIS Login ID,
Section``), followed by one column per assignment, and a ``Points Possible`` row under the header. dlvision fills
``SIS Login ID`` with the nbgrader student id (Canvas matches students on it) and ``Student`` with the name the
gradebook holds; a submission not graded yet is left blank, which Canvas leaves alone.
"""
from __future__ import annotations

import csv
import io

IDENTITY = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]


def canvas_csv(rows: list[dict], names: dict[str, str]) -> str:
    """The Canvas import file for the gradebook ``rows`` (see api.grades); ``names``: student id -> display name."""
    assignments = sorted({row["assignment"] for row in rows})
    maxima = {row["assignment"]: row["max_score"] for row in rows}
    scores: dict[str, dict[str, float | None]] = {}
    for row in rows:
        scores.setdefault(row["student"], {})[row["assignment"]] = row["score"]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(IDENTITY + assignments)
    writer.writerow(["Points Possible", "", "", "", ""] + [f"{maxima[a]:g}" for a in assignments])
    for student in sorted(scores):
        writer.writerow([names.get(student) or student, "", "", student, ""]
                        + ["" if scores[student].get(a) is None else f"{scores[student][a]:g}" for a in assignments])
    return out.getvalue()
