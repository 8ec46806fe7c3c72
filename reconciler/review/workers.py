"""Fan work over a fleet's nodes out to forked worker processes.

Each worker is initialised once (inheriting the parsed fleet through fork, so it
compiles each template once) and then handles chunks of node names.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import multiprocessing
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import TypeVar

R = TypeVar("R")


def default_jobs() -> int:
    """Worker processes to use: the CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def chunked(items: list[str], jobs: int) -> list[list[str]]:
    """Chunks of at most 32 names, shrinking towards the end (to 4) so that the workers
    finish together: the last chunk a worker takes is a small one."""
    chunks = []
    start = 0
    while start < len(items):
        size = max(4, min(32, (len(items) - start) // (jobs * 4)))
        chunks.append(items[start : start + size])
        start += size
    return chunks


def _start(initializer: Callable[..., None], *initargs: object) -> None:
    """A worker's start: with the cyclic collector on, whatever the parent's (`reconciler
    plan` runs without it), since rendering node after node leaves cycles behind."""
    gc.enable()
    initializer(*initargs)


@contextlib.contextmanager
def _collecting() -> Iterator[None]:
    """The cyclic collector on while this process does the workers' work itself."""
    was_on = gc.isenabled()
    gc.enable()
    try:
        yield
    finally:
        if not was_on:
            gc.disable()


def fan_out(
    items: list[str],
    jobs: int | None,
    initializer: Callable[..., None],
    initargs: tuple[object, ...],
    work: Callable[[list[str]], R],
) -> Iterator[tuple[int, int, R]]:
    """`work` over chunks of `items`, yielding (chunk index, chunk size, result) as chunks
    finish; in this process when one worker is enough."""
    jobs = jobs or default_jobs()
    chunks = chunked(items, jobs)
    if jobs <= 1 or len(chunks) <= 1:
        with _collecting():
            initializer(*initargs)
            for index, chunk in enumerate(chunks):
                yield index, len(chunk), work(chunk)
        return
    context = multiprocessing.get_context("fork")
    # What the workers inherit (the fleets, every module) lives as long as they do:
    # frozen, their collections never go through it (nor write to it, which would copy
    # its pages), and neither do this process's until the workers are done.
    gc.freeze()
    try:
        with ProcessPoolExecutor(min(jobs, len(chunks)), mp_context=context,
                                 initializer=functools.partial(_start, initializer, *initargs)
                                 ) as pool:
            futures = {pool.submit(work, chunk): (index, len(chunk))
                       for index, chunk in enumerate(chunks)}
            for future in as_completed(futures):
                index, size = futures[future]
                yield index, size, future.result()
    finally:
        gc.unfreeze()
