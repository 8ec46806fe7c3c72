"""Render one node in a child process that the kernel stops at its CPU and memory budget.

Templates come from the config repo, so a merge request can hold a loop that never ends
or a filter that asks for gigabytes. The sandbox refuses what it can see coming (huge
repetitions, powers); everything else is bounded here: the node's files are rendered
in one forked child with `RLIMIT_CPU` and `RLIMIT_AS`, their total size is capped, and
the parent waits for the child's answer while watching the run's stop request, so a
stop signal always ends the render (the child is killed) and the run releases its lock.
One fork per node render: the fork shares the compiled fleet, and costs little next to
rendering (bench/bench_render_budget.py prints the figures). The review, which renders
every node of the fleet, holds each node to a CPU budget with a profiling timer instead
(`render_timed`): no fork per node.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import resource
import select
import signal
import threading
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, NoReturn

from reconciler.compile.nodeconfig import NodeConfig
from reconciler.errors import ConfigError, Problem, RetryLater
from reconciler.render.rendered import RenderedFile

if TYPE_CHECKING:
    from reconciler.render.renderer import Renderer

_POLL_SECONDS = 0.2  # how often a waiting parent looks at the stop request
REVIEW_CPU_SECONDS = 60.0  # per node, when the review renders the whole fleet


@dataclass(frozen=True)
class Budget:
    """What rendering one node may cost: CPU seconds, memory (address space the child may
    add to what it shares at the fork), and the total size of the rendered files."""

    cpu_seconds: int = 60
    memory_bytes: int = 1 << 30
    output_bytes: int = 256 << 20


class RenderStopped(RetryLater):
    """The run was asked to stop while rendering: nothing was changed, the commit was not
    refused (the next run renders it again)."""


Rendered = tuple[list[RenderedFile], list[Problem]]


def render_bounded(renderer: Renderer, node: NodeConfig, budget: Budget,
                   should_stop: Callable[[], bool]) -> Rendered:
    """`render_node` in a child process held to `budget`; also saves the renderer's
    compiled templates (in the child, which compiled them). A budget overrun is a
    problem of the node, as a template error is; a stop request raises `RenderStopped`."""
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child's coverage is not collected
        os.close(reader)
        _child(renderer, node, budget, writer)
    os.close(writer)
    try:
        payload = _collect(reader, pid, should_stop)
    finally:
        os.close(reader)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status) or not payload:
        raise ConfigError([Problem(_overrun(status, budget), "templates", None, node.name)])
    result: Rendered = pickle.loads(payload)
    return result


def _collect(reader: int, pid: int, should_stop: Callable[[], bool]) -> bytes:
    """Everything the child writes until it closes the pipe; a stop request kills it."""
    chunks: list[bytes] = []
    while True:
        if should_stop():
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise RenderStopped.because("stopped while rendering; nothing was changed")
        ready, _, _ = select.select([reader], [], [], _POLL_SECONDS)
        if ready:
            chunk = os.read(reader, 1 << 20)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


class _OverBudget(BaseException):
    """Raised by the CPU timer inside a render: a BaseException, so no `except Exception`
    on the way (a template filter, Jinja2 itself) can swallow it."""


def _expire(_signum: int, _frame: object) -> None:
    raise _OverBudget


_timing = 0  # how many `timing()` scopes this process is in


@contextlib.contextmanager
def timing() -> Iterator[None]:
    """A scope for many `render_timed` calls (a worker's chunk of nodes): the profiling
    timer's handler is installed once for all of them, not once per node (restoring
    it costs signal.py a failed enum lookup, more than a small node's file takes)."""
    global _timing
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGPROF, _expire)
    _timing += 1
    try:
        yield
    finally:
        _timing -= 1
        signal.signal(signal.SIGPROF, previous)


def render_timed(renderer: Renderer, node: NodeConfig, cpu_seconds: float,
                 only: Collection[str] | None = None) -> Rendered:
    """`render_node` in this process, stopped after `cpu_seconds` of CPU by a profiling
    timer: for the review (validate, plan, the hooks), which renders every node and
    cannot afford a fork each. It stops Python code (any template loop), not one long
    C call; a node's own run uses `render_bounded`. Off the main thread (where signals
    cannot be handled) the render is not timed. `only`: those actions (`render_node`)."""
    from reconciler.render.renderer import render_node

    if threading.current_thread() is not threading.main_thread():
        return render_node(renderer, node, only)
    if not _timing:
        with timing():
            return render_timed(renderer, node, cpu_seconds, only)
    try:
        signal.setitimer(signal.ITIMER_PROF, cpu_seconds)
        try:
            return render_node(renderer, node, only)
        finally:
            signal.setitimer(signal.ITIMER_PROF, 0)
    except _OverBudget:
        return [], [Problem(f"rendering took more than its budget of {cpu_seconds:g} s of CPU "
                            "(a loop without end, or loops nested too deep?)", "templates",
                            None, node.name)]


def _overrun(status: int, budget: Budget) -> str:
    """Why the child gave no answer, in the words of the budget it broke."""
    if os.WIFSIGNALED(status) and os.WTERMSIG(status) in (signal.SIGXCPU, signal.SIGKILL):
        return (f"rendering took more than its budget of {budget.cpu_seconds} s of CPU "
                "(a loop without end, or loops nested too deep?)")
    if os.WIFSIGNALED(status):
        return f"rendering was killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return "rendering ended without an answer (out of memory?)"


def _child(renderer: Renderer, node: NodeConfig, budget: Budget, writer: int) -> NoReturn:
    """Render under the limits, write the pickled answer, and exit without cleanup (the
    parent's atexit handlers, buffers and locks are not the child's to run)."""
    from reconciler.render.renderer import render_node

    code = 0
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides on Ctrl-C
        _limit(budget)
        try:
            files, problems = render_node(renderer, node)
            renderer.save_cache()
            total = sum(len(item.content or b"") for item in files)
            if total > budget.output_bytes:
                files, problems = [], [Problem(
                    f"the rendered files add up to {total} bytes (budget "
                    f"{budget.output_bytes})", "templates", None, node.name)]
            payload = pickle.dumps((files, problems), pickle.HIGHEST_PROTOCOL)
        except MemoryError:
            payload = pickle.dumps(([], [Problem(
                f"rendering needed more than its memory budget of "
                f"{budget.memory_bytes >> 20} MiB (a huge repetition, padding or number?)",
                "templates", None, node.name)]))
        view = memoryview(payload)
        while view:
            view = view[os.write(writer, view):]
    except BaseException:  # whatever it is, the parent reports "no answer"
        code = 1
    finally:
        os._exit(code)


def _limit(budget: Budget) -> None:
    """CPU seconds (SIGXCPU at the limit, SIGKILL a second later) and address space: what
    the child maps now, plus the budget."""
    used = resource.getrusage(resource.RUSAGE_SELF)
    cpu = int(used.ru_utime + used.ru_stime) + budget.cpu_seconds
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    mapped = _mapped_bytes()
    resource.setrlimit(resource.RLIMIT_AS, (mapped + budget.memory_bytes,) * 2)


def _mapped_bytes() -> int:
    """The process's virtual size now (VmSize), which RLIMIT_AS counts against."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0
