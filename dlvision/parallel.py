"""Grading many submissions at once: on a pool of local processes, or on a Dask cluster.

Jobs and results are plain data (:mod:`dlvision.worker`), so a job grades the same anywhere. Results come back to
this process, the only one that writes the gradebook, which saves each as it arrives. A worker that dies, or a
job lost with it, fails only that submission: it is reported, and the next run grades it. Each submission has
its own time budgets inside the job, so none can hold up the batch.

On a cluster every worker needs the course's Python environment (this package, torch, nbgrader) and bubblewrap;
course files and submissions travel with each job, so workers share no folder with the coordinator.
"""
from __future__ import annotations

import contextlib
import multiprocessing
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
import os
from typing import Iterable, Iterator

from traitlets import Bool, Integer, Unicode
from traitlets.config import Configurable

from dlvision.worker import GradingJob, GradingResult, grade


class ParallelGrading(Configurable):
    """How `dlvision autograde` spreads a batch (the command's --jobs, --dask and --scheduler override these)."""

    jobs = Integer(0, help="Submissions graded at once on this machine (0: one per available core).").tag(config=True)
    dask = Bool(False, help="Grade on a Dask LocalCluster of `jobs` workers instead of a process pool.").tag(
        config=True)
    scheduler = Unicode("", help="Address of a running Dask scheduler to grade on (e.g. tcp://10.0.0.5:8786).").tag(
        config=True)

    def workers(self) -> int:
        return self.jobs or len(os.sched_getaffinity(0))


def grade_all(jobs: Iterable[GradingJob], *, workers: int = 1, dask: bool = False,
              scheduler: str | None = None) -> Iterator[GradingResult]:
    """Grade ``jobs`` and yield each result as it is ready (in any order).

    ``workers``: processes on this machine (or LocalCluster workers with ``dask``); ``scheduler``: the address of
    a running Dask scheduler (then ``workers`` is the cluster's business).
    """
    if scheduler:
        yield from _on_dask(jobs, workers, scheduler)
    elif workers <= 1:
        yield from (grade(job) for job in jobs)
    else:
        with cores_shared_by(workers):
            yield from _on_dask(jobs, workers, None) if dask else _on_processes(jobs, workers)


@contextlib.contextmanager
def cores_shared_by(workers: int):
    """Local workers, and the kernels they start, share this machine's cores: each gets its share of threads
    (OMP_NUM_THREADS, unless it is set already). Without it every kernel's torch spins a thread per core, and
    two submissions at once on two cores run slower than one after the other."""
    share = str(max(1, len(os.sched_getaffinity(0)) // workers))
    saved = {name: os.environ.get(name) for name in _THREAD_VARIABLES}
    os.environ.update({name: saved[name] or share for name in _THREAD_VARIABLES})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def _on_processes(jobs: Iterable[GradingJob], workers: int) -> Iterator[GradingResult]:
    """A pool of spawned processes, with at most two jobs per worker read into memory at a time.

    A process that dies breaks its whole pool, so the jobs that were in it are graded again one at a time, each
    in a pool of its own: only the job that breaks that pool too is reported as lost.
    """
    jobs = iter(jobs)
    while True:
        broken: list[GradingJob] = []
        with ProcessPoolExecutor(max_workers=workers, mp_context=_SPAWN) as pool:
            running: dict = {}
            try:
                while not broken:
                    while len(running) < 2 * workers and (job := next(jobs, None)) is not None:
                        running[pool.submit(grade, job)] = job
                    if not running:
                        return
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in done:
                        try:
                            yield future.result()
                        except BrokenProcessPool:
                            broken.append(running[future])
                        del running[future]
                broken += list(running.values())
            except BaseException:
                for future in running:
                    future.cancel()
                raise
        for job in broken:
            with ProcessPoolExecutor(max_workers=1, mp_context=_SPAWN) as alone:
                try:
                    yield alone.submit(grade, job).result()
                except BrokenProcessPool:
                    yield _lost(job, "its grading process died (out of memory?)")


_SPAWN = multiprocessing.get_context("spawn")


def _on_dask(jobs: Iterable[GradingJob], workers: int, scheduler: str | None) -> Iterator[GradingResult]:
    """Dask distributed: a running cluster at ``scheduler``, or a LocalCluster of ``workers`` processes."""
    from distributed import Client, LocalCluster, as_completed

    cluster = None if scheduler else LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                                  dashboard_address=None)
    try:
        with Client(scheduler or cluster) as client:
            futures = {}
            for job in jobs:
                futures[client.submit(grade, job, pure=False, retries=0)] = job
            for future in as_completed(futures):
                job = futures[future]
                try:
                    yield future.result()
                except Exception as error:  # noqa: BLE001 - a lost worker fails only its own jobs
                    yield _lost(job, f"its Dask worker failed ({type(error).__name__})")
    finally:
        if cluster is not None:
            cluster.close()


def _lost(job: GradingJob, why: str) -> GradingResult:
    return GradingResult(job.student, False, f"not graded: {why}. Run autograde again to grade it.")
