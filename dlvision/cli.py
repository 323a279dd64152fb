"""The dlvision command: build, autograde, feedback, grades, selftest and demo, around nbgrader.

Any nbgrader or dlvision setting can be given for one run as ``--Class.trait=value`` after the command's
arguments, e.g. ``dlvision autograde ch02_neurons --TrustedExecute.timeout=60``.
"""
from __future__ import annotations

import csv
import io
import os
import tempfile
import time
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from dlvision import api, class_report, demo as demo_course, lms, mutate as mutations, selftest as selftests
from dlvision.course import Course, CourseError
from dlvision.parallel import ParallelGrading

console = Console()
SETTINGS = dict(ignore_unknown_options=True)


class _Group(click.Group):
    """Turns a CourseError into a clear message and a non-zero exit."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except CourseError as error:
            raise click.ClickException(str(error)) from None


@click.group(cls=_Group)
@click.option("--course", "course_root", default=".", show_default=True, type=click.Path(file_okay=False),
              help="The course folder, holding nbgrader_config.py, source/ and graders/.")
@click.version_option(package_name="dlvision")
@click.pass_context
def main(ctx, course_root):
    """dlvision: the course-ops toolkit of the Deep Learning for Computer Vision course."""
    ctx.obj = Path(course_root)


def _course(ctx, args: tuple[str, ...]) -> tuple[Course, list[str]]:
    """The course with the ``--Class.trait=value`` settings among ``args``, and the remaining arguments."""
    settings = [a for a in args if a.startswith("--")]
    return Course(ctx.obj, settings), [a for a in args if not a.startswith("--")]


@main.command(context_settings=SETTINGS)
@click.argument("args", nargs=-1, type=click.UNPROCESSED, metavar="[ASSIGNMENT]... [--Class.trait=value]...")
@click.pass_context
def build(ctx, args):
    """Lint the sources and generate release/ and solutions/ (all assignments if none are named)."""
    course, names = _course(ctx, args)
    assignments = course.check_assignments(names)
    with console.status(f"Building {', '.join(assignments)}"):
        api.build(course, assignments)
    for assignment in assignments:
        console.print(f"[green]built[/] {assignment}: release/{assignment}/ and solutions/{assignment}/")


@main.command(context_settings=SETTINGS)
@click.argument("args", nargs=-1, type=click.UNPROCESSED, metavar="ASSIGNMENT [--Class.trait=value]...")
@click.option("--student", "students", multiple=True, help="Grade only this student (repeatable).")
@click.option("--jobs", "-j", type=click.IntRange(min=1), help="Submissions graded at once (default: one per core; "
              "ParallelGrading.jobs).")
@click.option("--dask", is_flag=True, help="Grade on a Dask LocalCluster of --jobs workers.")
@click.option("--scheduler", help="Grade on the running Dask cluster at this address (ParallelGrading.scheduler).")
@click.option("--force", is_flag=True, help="Grade again submissions already graded from the same files and graders.")
@click.pass_context
def autograde(ctx, args, students, jobs, dask, scheduler, force):
    """Autograde the submissions of ASSIGNMENT; a broken submission is reported and the batch goes on."""
    course, names = _course(ctx, args)
    [assignment] = course.check_assignments(_one(names, "ASSIGNMENT"))
    settings = ParallelGrading(config=course.config())
    workers = jobs or settings.workers()
    start, total = time.perf_counter(), len(students or api.submissions(course, assignment))
    try:
        outcomes = _with_progress(f"Autograding {assignment} ({workers} at once)", total,
                                  lambda step: api.autograde(course, assignment, list(students), step, jobs=workers,
                                                             dask=dask or settings.dask,
                                                             scheduler=scheduler or settings.scheduler or None,
                                                             force=force))
    except KeyboardInterrupt:
        raise click.ClickException("interrupted: the submissions graded so far are saved; run the same command "
                                   "again to grade the rest.") from None
    _outcome_table(f"{assignment}: autograde", outcomes)
    graded = sum(o.ok and "skipped" not in o.message for o in outcomes)
    seconds = time.perf_counter() - start
    if graded:
        console.print(f"{graded} graded in {seconds:.0f} s ({60 * graded / seconds:.1f} submissions per minute, "
                      f"{workers} at once)")
    else:
        console.print("nothing new to grade (--force grades unchanged submissions again)")
    _exit_if_failed(outcomes, "submission(s) could not be graded; the gradebook holds the others")


@main.command(context_settings=SETTINGS)
@click.argument("args", nargs=-1, type=click.UNPROCESSED, metavar="ASSIGNMENT [--Class.trait=value]...")
@click.option("--student", "students", multiple=True, help="Only this student (repeatable).")
@click.pass_context
def feedback(ctx, args, students):
    """Generate feedback HTML for the autograded submissions of ASSIGNMENT (feedback/<student>/)."""
    course, names = _course(ctx, args)
    [assignment] = course.check_assignments(_one(names, "ASSIGNMENT"))
    outcomes = api.feedback(course, assignment, list(students))
    _outcome_table(f"{assignment}: feedback in {course.root / 'feedback'}", outcomes)
    _exit_if_failed(outcomes, "feedback file(s) could not be generated")


@main.command(context_settings=SETTINGS)
@click.argument("args", nargs=-1, type=click.UNPROCESSED, metavar="[--Class.trait=value]...")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, writable=True), help="Also write the grades here.")
@click.option("--canvas", "canvas_path", type=click.Path(dir_okay=False, writable=True),
              help="Also write Canvas's gradebook import file here.")
@click.pass_context
def grades(ctx, args, csv_path, canvas_path):
    """Print the gradebook: one row per student and assignment, auto-graded and graded by hand apart."""
    course, _ = _course(ctx, args)
    rows = api.grades(course)
    _grades_table(rows)
    if csv_path:
        _write_text(Path(csv_path), _csv_text(rows))
        console.print(f"wrote {len(rows)} rows to {csv_path}")
    if canvas_path:
        _write_text(Path(canvas_path), lms.canvas_csv(rows, api.student_names(course)))
        console.print(f"wrote Canvas's import file to {canvas_path} (students matched on SIS Login ID)")


@main.command(context_settings=SETTINGS)
@click.argument("args", nargs=-1, type=click.UNPROCESSED, metavar="ASSIGNMENT [--Class.trait=value]...")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True),
              help="Where to write the HTML report (default: reports/<ASSIGNMENT>.html in the course).")
@click.pass_context
def report(ctx, args, output):
    """What the class got wrong: an HTML report (totals, cells, each test's failure rate and messages)."""
    course, names = _course(ctx, args)
    [assignment] = course.check_assignments(_one(names, "ASSIGNMENT"))
    result = class_report.collect(course, assignment)
    path = Path(output) if output else course.root / "reports" / f"{assignment}.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    class_report.write(result, path)
    table = Table(title=f"{assignment}: most failed grader tests ({result.students} submissions)")
    for column in ("cell", "test", "failed", "most frequent message (numbers as #)"):
        table.add_column(column)
    for row in class_report.summary_rows(result):
        table.add_row(*row)
    console.print(table)
    console.print(f"report: {path}")


@main.command(context_settings=SETTINGS)
@click.argument("args", nargs=-1, type=click.UNPROCESSED, metavar="[ASSIGNMENT]... [--Class.trait=value]...")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=os.cpu_count() or 1, show_default=True,
              help="Variants graded in parallel.")
@click.pass_context
def selftest(ctx, args, jobs):
    """Prove the graders: solutions score full marks, stubs zero, and every mutant is caught."""
    course, names = _course(ctx, args)
    assignments = course.check_assignments(names)
    start = time.perf_counter()
    console.print(f"Building {', '.join(assignments)} in a scratch course, then grading every variant")
    results = selftests.selftest(course, assignments, jobs,
                                 lambda r: console.print(f"{'[green]ok  [/]' if r.passed else '[red]FAIL[/]'} "
                                                         f"{r.variant.name} ({r.seconds:.0f} s): {r.verdict}",
                                                         soft_wrap=True))
    table = Table(title=f"selftest of {', '.join(assignments)} ({time.perf_counter() - start:.0f} s, {jobs} jobs)")
    for column in ("variant", "expected", "result", "seconds"):
        table.add_column(column)
    for r in results:
        table.add_row(r.variant.name, r.variant.description, ("[green]" if r.passed else "[red]") + r.verdict,
                      f"{r.seconds:.0f}")
    console.print(table)
    for r in results:
        for cell, report in r.reports.items():
            console.print(f"[red]{r.variant.name}[/], cell {cell}:\n{report}")
    failed = [r for r in results if not r.passed]
    if failed:
        raise click.ClickException(f"{len(failed)} of {len(results)} variants did not score as they must.")


@main.command(context_settings=SETTINGS)
@click.argument("args", nargs=-1, type=click.UNPROCESSED, metavar="ASSIGNMENT... [--Class.trait=value]...")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=os.cpu_count() or 1, show_default=True,
              help="Mutants graded in parallel.")
@click.option("--cell", "cells", multiple=True, help="Mutate only this solution cell (repeatable).")
@click.pass_context
def mutate(ctx, args, jobs, cells):
    """Mutation-test the graders: automatic mutants of the solution cells, the score per cell, the survivors."""
    course, names = _course(ctx, args)
    assignments = course.check_assignments(names)
    if not names:
        raise CourseError("name the assignment(s) to mutate, e.g. `dlvision mutate ch02_neurons`.")
    failed = False
    for assignment in assignments:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      TextColumn("{task.fields[last]}"), console=console) as bar:
            task = bar.add_task(f"Mutating {assignment}", total=None, last="")
            outcomes, seconds = mutations.run(course, assignment, jobs=jobs, cells=set(cells) or None,
                                              progress=lambda o: bar.update(task, advance=1, last=(
                                                  "killed " if o.killed else "SURVIVED ") + o.mutant.id))
        table = Table(title=f"dlvision mutate {assignment} ({seconds:.0f} s, {jobs} jobs)")
        for column in ("solution cell", "mutants", "killed", "equivalent", "score"):
            table.add_column(column)
        for cell, (total, killed, equivalent) in mutations.scores(outcomes).items():
            score = killed / max(total - equivalent, 1)
            table.add_row(cell, str(total), str(killed), str(equivalent), f"{score:.0%}")
        total = len(outcomes)
        killed = sum(o.killed for o in outcomes)
        equivalent = sum(bool(o.equivalent) for o in outcomes)
        table.add_row("[b]all[/]", str(total), str(killed), str(equivalent), f"[b]{killed / max(total - equivalent, 1):.0%}")
        console.print(table)
        survivors = [o for o in outcomes if not o.killed and not o.equivalent]
        for o in survivors:
            console.print(f"[red]survived[/] {o.mutant.id} (line {o.mutant.line}):\n{o.mutant.diff}", soft_wrap=True)
        failed |= bool(survivors)
    if failed:
        raise click.ClickException("survivors above: kill each with a better grader, or record it in "
                                   "graders/<id>/EQUIVALENT_MUTANTS.md with the reason it is equivalent.")


@main.command(context_settings=SETTINGS)
@click.argument("args", nargs=-1, type=click.UNPROCESSED, metavar="[--Class.trait=value]...")
@click.option("--folder", type=click.Path(file_okay=False), help="Build the demo course here (default: a new "
              "temporary folder).")
@click.option("--timeout", default=10, show_default=True, help="Seconds a student cell may run (the looping student).")
@click.pass_context
def demo(ctx, args, folder, timeout):
    """Build ch02 in a scratch course, grade five synthetic students, write feedback, print the gradebook."""
    course, _ = _course(ctx, args)
    course.overrides = [f"--TrustedExecute.timeout={timeout}"] + course.overrides
    course.check_assignments([demo_course.DEMO_ASSIGNMENT])
    with console.status("Building the demo course"):
        demo, stories = demo_course.prepare(course, Path(folder) if folder else None)
    console.print(f"Demo course: {demo.root}")
    for student, story in stories.items():
        console.print(f"  {student}: {story}")
    assignment = demo_course.DEMO_ASSIGNMENT
    outcomes = _with_progress(f"Autograding {assignment}", len(stories),
                              lambda step: api.autograde(demo, assignment, list(stories), step))
    _outcome_table(f"{assignment}: autograde", outcomes)
    api.feedback(demo, assignment)
    _grades_table(api.grades(demo))
    console.print(f"Feedback: {demo.root / 'feedback'}/<student>/{assignment}/*.html")
    console.print(f"Autograded notebooks: {demo.root / 'autograded'}/<student>/{assignment}/")


def _one(names: list[str], what: str) -> list[str]:
    if len(names) != 1:
        raise CourseError(f"name exactly one {what} (got {len(names)}).")
    return names


def _with_progress(title: str, total: int, work):
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.fields[last]}"), console=console) as progress:
        task = progress.add_task(title, total=total, last="")
        return work(lambda outcome: progress.update(task, advance=1, last=f"{outcome.student}: "
                                                    + (f"{outcome.score:g}/{outcome.max_score:g}" if outcome.ok
                                                       else "failed")))


def _outcome_table(title: str, outcomes: list[api.Outcome]) -> None:
    table = Table(title=title)
    for column in ("student", "status", "score", "notes"):
        table.add_column(column)
    for o in outcomes:
        score = str(o.totals) if o.totals else (f"{o.score:g} / {o.max_score:g}" if o.score is not None else "")
        table.add_row(o.student, "[green]ok[/]" if o.ok else "[red]failed[/]", score, o.message)
    console.print(table)


def _grades_table(rows: list[dict]) -> None:
    table = Table(title="Gradebook (auto-graded and graded by hand apart)")
    for column in ("student", "assignment", "auto", "by hand", "total", "to grade by hand"):
        table.add_column(column)
    for row in rows:
        if row["score"] is None:
            table.add_row(row["student"], row["assignment"], "missing", "", f"- / {row['max_score']:g}", "")
            continue
        graded_by_hand = row["by_hand_max"] - row["to_grade_by_hand"]
        table.add_row(row["student"], row["assignment"], f"{row['auto']:g} / {row['auto_max']:g}",
                      f"{row['by_hand']:g} / {graded_by_hand:g}" if graded_by_hand else "-",
                      f"{row['score']:g} / {row['max_score']:g}",
                      f"{row['to_grade_by_hand']:g} pt" if row["to_grade_by_hand"] else "")
    console.print(table)


def _csv_text(rows: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else ["student", "assignment"])
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def _write_text(path: Path, text: str) -> None:
    """Write atomically: a partly written file never replaces a good one."""
    with tempfile.NamedTemporaryFile("w", newline="", dir=path.parent or ".", delete=False, suffix=".tmp") as tmp:
        tmp.write(text)
    os.replace(tmp.name, path)


def _exit_if_failed(outcomes: list[api.Outcome], what: str) -> None:
    failed = [o for o in outcomes if not o.ok]
    if failed:
        raise click.ClickException(f"{len(failed)} {what}: {', '.join(o.student for o in failed)}.")
