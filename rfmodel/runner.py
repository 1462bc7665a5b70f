"""Run an experiment's tasks: only the missing ones, longest first, locally or on Ray.

A :class:`Task` names a module-level function of an experiment module
(``rfmodel.experiments.<name>``, or any importable module given by its dotted path) and its
keyword arguments, so any process that can import rfmodel can run it. A task saves its own
results (atomically, :mod:`rfmodel.results`), so every backend shares one cache: what one run
finished, the next one loads.

:func:`run_tasks` runs the tasks that are not ``done``:

- ``backend="local"`` (default): on worker processes of this machine (default 2, one XLA
  thread each). Each worker is its own process group, fed one task at a time over a socket.
- ``backend="ray"``: the same tasks as Ray remote functions (``ray.remote(num_cpus=1)``), on the
  cluster at ``address`` (``None``: a new local Ray instance; ``"auto"``: the running one).
  Needs ``pip install "rfmodel[ray]"``, rfmodel installed on every node, and a results folder
  every node can write (a shared file system).

Interrupts and faults (both backends):

- :func:`run_stoppable` (what the ``rfmodel`` command runs its work through): the work runs on a
  thread; the main thread only waits, so it handles SIGINT/SIGTERM at once, even while XLA holds
  the work thread in C++ for minutes. The first signal stops every running task (local workers:
  SIGTERM, then SIGKILL after :data:`STOP_SECONDS`; Ray: ``ray.cancel(force=True)``), removes the
  temporary files of the writes in progress (:func:`rfmodel.results.abandon_writes`), prints the
  caller's message, flushes and ends the process with ``os._exit(128 + signum)`` (130 for
  SIGINT, 143 for SIGTERM): no unwinding, no interpreter shutdown racing XLA's threads. A second
  signal ends the process at once. Finished results are saved (atomically), so a rerun resumes.
- :func:`run_tasks` called from a program's main thread (a library user's script): SIGINT or
  SIGTERM cancels the pending tasks and stops the running ones (SIGTERM, then SIGKILL after
  :data:`GRACE_SECONDS`; Ray: ``ray.cancel(force=True)``), then raises :class:`Interrupted`.
  A signal whose exception was swallowed (raised inside a gc or weakref callback, where Python
  only prints "Exception ignored") is not lost: the runner polls for it at least once a second
  and raises it then; a later signal raises again.
- A local worker stops within milliseconds of SIGTERM (its task runs on a thread, its main
  thread only waits) and removes its own temporary files; it dies with its parent: it asks
  Linux for SIGKILL when the parent exits (``PR_SET_PDEATHSIG``) and, on any system, a watchdog
  thread ends it once its parent is gone, so a killed ``rfmodel`` (even ``kill -9``) leaves no
  worker behind.
- A task that raises is reported with its traceback after all others ran; finished ones are
  kept.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "Task",
    "Interrupted",
    "run_tasks",
    "default_workers",
    "stop_on_signals",
    "run_stoppable",
    "GRACE_SECONDS",
    "STOP_SECONDS",
]

#: Seconds a stopped worker gets to exit on SIGTERM before it is killed (SIGKILL).
GRACE_SECONDS = 2.0
#: Seconds :func:`run_stoppable` gives running workers after SIGTERM before SIGKILL (the whole
#: stop, message and flush included, must end within 2 s).
STOP_SECONDS = 0.8
#: One compute thread per worker process: the workers are the parallelism.
_WORKER_XLA_FLAGS = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


@dataclass(frozen=True)
class Task:
    """One unit of computation of an experiment, runnable in a worker process.

    Attributes:
        experiment: module name in :mod:`rfmodel.experiments` (e.g. ``"phase_diagram"``), or the
            dotted path of any importable module.
        func: name of the module-level function to call.
        kwargs: its keyword arguments (picklable: plain data and paths).
        name: label for the progress bar and the report.
        cost: estimated wall seconds on one core, used to start the longest tasks first (the
            progress bar counts tasks: estimates can be far off on a given machine).
        done: its results are already saved for this exact configuration.
    """

    experiment: str
    func: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    name: str = ""
    cost: float = 1.0
    done: bool = False


class Interrupted(KeyboardInterrupt):
    """The run was stopped by a signal; finished tasks are saved.

    Attributes:
        signum: the signal (``signal.SIGINT`` or ``signal.SIGTERM``).
        finished: names of the tasks finished (and saved) before the stop.
        unfinished: names of the tasks cancelled or stopped.
    """

    def __init__(self, signum: int, finished=(), unfinished=()) -> None:
        self.signum = int(signum)
        self.finished = list(finished)
        self.unfinished = list(unfinished)
        super().__init__(self.signal_name)

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_status(self) -> int:
        """128 + the signal number: 130 for SIGINT, 143 for SIGTERM (the shell's convention)."""
        return 128 + self.signum


def default_workers() -> int:
    """Worker processes: the CPU cores available to this process, at most 2 by default
    (override with the environment variable RFMODEL_WORKERS)."""
    env = os.environ.get("RFMODEL_WORKERS")
    if env:
        try:
            n = int(env)
        except ValueError:
            n = 0
        if n < 1:
            raise ValueError(f"RFMODEL_WORKERS must be an integer >= 1; got {env!r}")
        return n
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover (not Linux)
        cores = os.cpu_count() or 1
    return max(1, min(2, cores))


def _call(experiment: str, func: str, kwargs: dict[str, Any]) -> Any:
    import importlib

    if "." in experiment:
        mod = importlib.import_module(experiment)
    else:
        from .experiments import load_experiment

        mod = load_experiment(experiment)
    return getattr(mod, func)(**kwargs)


# ----------------------------------------------------------------------------- signals
class _Run:
    """A :func:`run_tasks` call in progress: what a stop must end and what it reports."""

    def __init__(self, todo: list[Task]) -> None:
        self.todo = todo
        self.finished: list[str] = []
        self.failed: list[str] = []
        self.pool: list[_Worker] = []  # local worker processes
        self.ray_refs: list[Any] = []  # pending Ray tasks
        self.ray_started = False  # this run started (or connected) Ray: shut it down on a stop
        self.fired: list[int] = []  # signals received (library mode)
        self.stopping = False  # cleaning up: stopping the workers

    def unfinished(self) -> list[str]:
        over = set(self.finished) | set(self.failed)
        return [t.name for t in self.todo if t.name not in over]

    def check(self) -> None:
        """Raise :class:`Interrupted` for a signal whose exception was swallowed."""
        if self.fired and not self.stopping:
            raise Interrupted(self.fired[0])


_RUNS: list[_Run] = []  # the run_tasks calls in progress in this process
_STOPPING: list[int] = []  # run_stoppable: the signal being handled


@contextlib.contextmanager
def _active(run: _Run) -> Iterator[_Run]:
    _RUNS.append(run)
    try:
        yield run
    finally:
        _RUNS.remove(run)


@contextlib.contextmanager
def stop_on_signals(run: _Run | None = None) -> Iterator[None]:
    """SIGINT and SIGTERM raise :class:`Interrupted`. Only in the main thread, where Python
    delivers signals (elsewhere, and under :func:`run_stoppable`, a no-op).

    A signal raised inside a gc or weakref callback is swallowed by Python; it is recorded in
    ``run`` (:func:`run_tasks` polls it), and every later signal raises again, except while the
    runner is stopping its workers (that takes at most :data:`GRACE_SECONDS`)."""
    if threading.current_thread() is not threading.main_thread() or _STOPPING:
        yield
        return
    fired = run.fired if run is not None else []

    def handler(signum, frame):
        fired.append(signum)
        if run is not None and run.stopping:
            return  # the cleanup is under way and ends in GRACE_SECONDS
        raise Interrupted(fired[0])

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _stop_runs(grace: float) -> None:
    """Stop every task running in this process now: local workers get SIGTERM (SIGKILL after
    ``grace`` seconds), pending Ray tasks are cancelled (at most ``grace`` seconds)."""
    pools = [w for run in list(_RUNS) for w in list(run.pool)]
    refs = [r for run in list(_RUNS) for r in list(run.ray_refs)]
    shutdown = any(run.ray_started for run in list(_RUNS))
    for w in pools:
        w.signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    if refs or shutdown:

        def cancel() -> None:
            import ray

            for ref in refs:
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=True)
            if shutdown:  # a local instance's processes would linger a minute without it
                with contextlib.suppress(Exception):
                    ray.shutdown()

        t = threading.Thread(target=cancel, name="rfmodel-ray-cancel", daemon=True)
        t.start()
        t.join(max(0.0, deadline - time.monotonic()))
    while any(w.proc.poll() is None for w in pools) and time.monotonic() < deadline:
        time.sleep(0.01)
    for w in pools:
        if w.proc.poll() is None:
            w.signal(signal.SIGKILL)


def _say_and_flush(text: str, seconds: float) -> None:
    """Print ``text`` to stderr and flush stdout and stderr, giving up after ``seconds`` (a
    stream whose reader stopped reading must not hold the exit)."""

    def go() -> None:
        for stream, line in ((sys.stdout, None), (sys.stderr, text)):
            with contextlib.suppress(Exception):
                if line:
                    stream.write(line + "\n")
                stream.flush()

    t = threading.Thread(target=go, name="rfmodel-flush", daemon=True)
    t.start()
    t.join(seconds)


def run_stoppable(
    work: Callable[[], Any],
    *,
    message: Callable[[int, list[str] | None, list[str] | None], str] | None = None,
    restore: bool = True,
) -> Any:
    """``work()``, with SIGINT/SIGTERM ending this process within a second at any moment.

    ``work`` runs on a thread and the main thread only waits, so the signal is handled at once
    whatever the work is doing (Python runs signal handlers in the main thread between
    bytecodes; XLA can hold a thread in C++ for minutes). On the first signal: every running
    task is stopped (:func:`run_tasks`' workers, Ray tasks), the temporary files of writes in
    progress are removed (every result is written atomically: nothing half-written appears
    under a final name, and finished results stay saved), ``message(signum, finished,
    unfinished)`` is printed to stderr (the task names of a :func:`run_tasks` call in progress,
    or ``None``), stdout and stderr are flushed, and the process ends with
    ``os._exit(128 + signum)``: 130 for SIGINT, 143 for SIGTERM. A second signal ends it at once.

    Returns what ``work`` returns; an exception it raises (``SystemExit`` included) is raised
    here. From a thread other than the main one, ``work()`` is simply called. ``restore=False``
    leaves the handlers installed after the work (a program about to end: a signal during its
    last flush still exits 130/143, instead of reaching an interpreter in shutdown).
    """
    from .results import abandon_writes

    if threading.current_thread() is not threading.main_thread():
        return work()
    outcome: list[Any] = []

    def stop(signum: int, frame: Any) -> None:
        if _STOPPING:  # a second signal: now
            os._exit(128 + signum)
        _STOPPING.append(signum)
        t0 = time.monotonic()
        abandon_writes()
        runs = list(_RUNS)
        _stop_runs(STOP_SECONDS)
        finished = [n for r in runs for n in r.finished] if runs else None
        unfinished = [n for r in runs for n in r.unfinished()] if runs else None
        text = ""
        if message is not None:
            with contextlib.suppress(Exception):
                text = message(signum, finished, unfinished)
        _say_and_flush(text, max(0.2, 1.5 - (time.monotonic() - t0)))
        os._exit(128 + signum)

    def target() -> None:
        try:
            outcome.append((True, work()))
        except BaseException as e:  # noqa: BLE001 - handed to the main thread
            outcome.append((False, e))

    old = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        thread = threading.Thread(target=target, name="rfmodel-work", daemon=True)
        thread.start()
        while thread.is_alive():
            thread.join(0.25)  # the signal handler runs here, between two waits
    finally:
        if restore or not outcome:
            for s, h in old.items():
                signal.signal(s, h)
    ok, value = outcome[0]
    if not ok:
        raise value
    return value


# ----------------------------------------------------------------------------- local workers
def _die_with_parent(parent_pid: int) -> None:
    """End this process when ``parent_pid`` exits: PR_SET_PDEATHSIG on Linux, plus a watchdog
    thread polling the parent pid (any system; also covers a parent gone before the prctl)."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG = 1
        except (OSError, AttributeError):  # pragma: no cover
            pass
    if os.getppid() != parent_pid:
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, name="rfmodel-parent-watchdog", daemon=True).start()


def _worker_main(fd: int, parent_pid: int) -> None:
    """A local worker: receive ``(name, experiment, func, kwargs)``, reply
    ``(status, name, value, seconds)``, until the parent closes the socket.

    Each task runs on a thread while this (main) thread waits, so SIGTERM is handled within
    milliseconds whatever the task is doing: the temporary files of its writes in progress are
    removed and the process ends (status 143)."""
    from multiprocessing.connection import Connection

    from .results import abandon_writes

    _die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides; it stops us with SIGTERM

    def on_term(signum, frame):
        abandon_writes()
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    conn = Connection(fd)
    while True:
        try:
            name, experiment, func, kwargs = conn.recv()
        except (EOFError, OSError):
            return
        t0 = time.perf_counter()
        reply: list[Any] = []

        def run(name=name, experiment=experiment, func=func, kwargs=kwargs, reply=reply) -> None:
            try:
                reply.append(("ok", name, _call(experiment, func, kwargs)))
            except BaseException:  # noqa: BLE001 - reported by the parent
                reply.append(("error", name, traceback.format_exc()))

        thread = threading.Thread(target=run, name="rfmodel-task", daemon=True)
        thread.start()
        while thread.is_alive():
            thread.join(0.25)
        try:
            conn.send((*reply[0], time.perf_counter() - t0))
        except (OSError, ValueError):
            return
        except Exception:  # noqa: BLE001 - an unpicklable return value
            conn.send(("error", name, traceback.format_exc(), time.perf_counter() - t0))


class _Worker:
    """One worker process (its own session and process group) and its socket."""

    def __init__(self) -> None:
        from multiprocessing.connection import Connection

        if _STOPPING:  # run_stoppable is ending the process: start nothing that would outlive it
            threading.Event().wait()
        ours, theirs = socket.socketpair()
        env = dict(os.environ)
        env.setdefault("XLA_FLAGS", _WORKER_XLA_FLAGS)
        # The worker imports the same rfmodel as this process, installed or not.
        root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(
            [root, *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])]
        )
        # Die with the parent from the first statement on, before the seconds of importing
        # rfmodel and JAX (_die_with_parent repeats it with a watchdog): a worker started while
        # the parent ends must not hold its pipes open.
        code = (
            "import os, sys\n"
            "if sys.platform.startswith('linux'):\n"
            "    try:\n"
            "        import ctypes; ctypes.CDLL(None).prctl(1, 9, 0, 0, 0)\n"
            "    except Exception:\n"
            "        pass\n"
            "if os.getppid() != int(sys.argv[2]):\n"
            "    os._exit(1)\n"
            "from rfmodel.runner import _worker_main\n"
            "_worker_main(*map(int, sys.argv[1:]))\n"
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code, str(theirs.fileno()), str(os.getpid())],
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,  # Ctrl-C at a terminal reaches only the parent
        )
        theirs.close()
        self.conn = Connection(ours.detach())
        self.task: Task | None = None
        self.started = 0.0

    def submit(self, task: Task) -> None:
        self.task, self.started = task, time.perf_counter()
        self.conn.send((task.name, task.experiment, task.func, task.kwargs))

    def close(self) -> None:
        """Let an idle worker exit (it sees the socket close)."""
        with contextlib.suppress(OSError):
            self.conn.close()

    def signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)


def _stop_workers(workers: list[_Worker], grace: float, *, terminate: bool = True) -> None:
    """Close every worker's socket (an idle worker exits on it); with ``terminate`` also send
    SIGTERM; SIGKILL those still alive after ``grace`` seconds; reap them all."""
    for w in workers:
        w.close()
        if terminate and w.proc.poll() is None:
            w.signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for w in workers:
        try:
            w.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            w.signal(signal.SIGKILL)
            w.proc.wait()


def _run_local(run: _Run, workers: int, finish, tick) -> None:
    from multiprocessing.connection import wait

    queue = deque(run.todo)
    pool = run.pool
    pool += [_Worker() for _ in range(min(workers, len(run.todo)))]
    try:
        for w in pool:
            w.submit(queue.popleft())
        while any(w.task is not None for w in pool):
            run.check()
            busy = {w.conn: w for w in pool if w.task is not None}
            for conn in wait(list(busy), timeout=1.0):
                w = busy[conn]
                task = w.task
                try:
                    status, _, value, _ = conn.recv()
                except (EOFError, OSError):
                    code = w.proc.wait()
                    finish(task, None, f"worker process died (exit status {code}) running it")
                    w.task = None
                    w.close()
                    pool.remove(w)
                    if queue:  # replace it
                        pool.append(_Worker())
                        pool[-1].submit(queue.popleft())
                    continue
                w.task = None
                finish(task, value if status == "ok" else None, None if status == "ok" else value)
                if queue:
                    w.submit(queue.popleft())
            tick([(w.task, time.perf_counter() - w.started) for w in pool if w.task is not None])
        _stop_workers(pool, grace=10.0, terminate=False)  # idle: they exit on the closed socket
    except BaseException:
        run.stopping = True
        _stop_workers(pool, grace=GRACE_SECONDS)
        raise


# ----------------------------------------------------------------------------- Ray
def _ray_call(experiment: str, func: str, kwargs: dict[str, Any]) -> Any:
    if "jax" not in sys.modules:  # one XLA thread per task: the Ray workers are the parallelism
        os.environ.setdefault("XLA_FLAGS", _WORKER_XLA_FLAGS)
    return _call(experiment, func, kwargs)


def _run_ray(run: _Run, address: str | None, workers: int | None, finish, tick) -> None:
    try:
        import ray
    except ImportError:
        raise ValueError(
            'backend="ray" needs Ray: pip install "rfmodel[ray]" (or pip install ray)'
        ) from None
    started = False
    if not ray.is_initialized():
        kw: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True}
        if address is None and workers is not None:
            kw["num_cpus"] = int(workers)  # a new local instance: as many slots as workers
        ray.init(address=address, **kw)
        started = run.ray_started = True
    remote = ray.remote(num_cpus=1, max_retries=0)(_ray_call)
    refs = {remote.remote(t.experiment, t.func, t.kwargs): t for t in run.todo}
    pending = list(refs)
    run.ray_refs = pending
    try:
        while pending:
            run.check()
            done, pending = ray.wait(pending, num_returns=1, timeout=1.0)
            run.ray_refs = pending
            for ref in done:
                task = refs[ref]
                try:
                    finish(task, ray.get(ref), None)
                except ray.exceptions.RayError as e:
                    finish(task, None, str(e))
            tick([])  # Ray does not say which pending task is running: finished ones only
    except BaseException:
        run.stopping = True
        for ref in pending:
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)
        raise
    finally:
        if started:
            ray.shutdown()


# ----------------------------------------------------------------------------- the runner
def run_tasks(
    tasks: Sequence[Task],
    *,
    workers: int | None = None,
    progress: bool = True,
    desc: str = "computing",
    backend: str = "local",
    address: str | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the tasks not yet ``done``, longest first.

    Args:
        tasks: the tasks (done ones are skipped).
        workers: local worker processes (default :func:`default_workers`); 1 runs the tasks in
            this process. With ``backend="ray"`` and a new local instance: its CPU slots.
        progress: show a tqdm progress bar counting the finished tasks, naming the running
            ones with their elapsed time.
        desc: progress-bar label.
        backend: ``"local"`` (worker processes) or ``"ray"``.
        address: Ray only: the cluster address (``None``: start a local instance; ``"auto"``:
            the running one; ``"ray://host:10001"``: a remote cluster).
        log: where to print failed tasks' tracebacks (default: stderr).

    Returns:
        ``{"run": [names], "seconds": wall seconds, "results": {name: return value}}``.

    Raises:
        Interrupted: on SIGINT/SIGTERM, after stopping every worker (finished tasks are saved).
        RuntimeError: after every other task finished, if any task raised (its traceback is
            printed); finished tasks are saved regardless.
    """
    if backend not in ("local", "ray"):
        raise ValueError(f"backend must be 'local' or 'ray'; got backend={backend!r}")
    if workers is not None and (
        not isinstance(workers, int) or isinstance(workers, bool) or workers < 1
    ):
        raise ValueError(f"workers must be an integer >= 1; got workers={workers!r}")
    todo = sorted((t for t in tasks if not t.done), key=lambda t: -t.cost)
    t0 = time.perf_counter()
    out: dict[str, Any] = {"run": [t.name for t in todo], "results": {}}
    if not todo:
        out["seconds"] = 0.0
        return out
    from tqdm.auto import tqdm

    say = log or (lambda s: print(s, file=sys.stderr))
    # The bar counts tasks, what is known: the experiments' cost estimates only order the tasks
    # (longest first) and can be far off on a given machine (figures --quick: one task carried
    # 93% of the estimate and took 1 of its 2.7 minutes); a bar paced by them crawled, then
    # jumped 7% -> 100%. The running tasks are named with their elapsed time.
    bar = tqdm(
        total=len(todo),
        desc=desc,
        disable=not progress,
        bar_format="{desc}: {n}/{total} tasks|{bar}| [{elapsed}]{postfix}",
    )
    run = _Run(todo)
    failed, finished = run.failed, run.finished

    def finish(task: Task, value: Any, error: Any) -> None:
        if _STOPPING:  # run_stoppable is ending the process: its workers die, quietly
            return
        if error is not None:
            failed.append(task.name)
            say(f"task {task.name} failed:\n{error}")
        else:
            out["results"][task.name] = value
            finished.append(task.name)
        bar.n = len(finished) + len(failed)
        bar.set_postfix_str(f"done: {task.name}")

    def tick(running: list[tuple[Task, float]]) -> None:
        if running:
            longest = sorted(running, key=lambda r: -r[1])[:2]
            names = ", ".join(f"{t.name} {el:.0f} s" for t, el in longest)
            more = f" +{len(running) - 2}" if len(running) > 2 else ""
            bar.set_postfix_str(f"running: {names}{more}")
        bar.refresh()

    try:
        with _active(run), stop_on_signals(run):
            if backend == "ray":
                _run_ray(run, address, workers, finish, tick)
            elif (default_workers() if workers is None else workers) == 1 or len(todo) == 1:
                for task in todo:
                    run.check()
                    bar.set_postfix_str(f"running: {task.name}")
                    try:
                        value = _call(task.experiment, task.func, task.kwargs)
                    except Exception:  # noqa: BLE001 - reported after the others ran
                        finish(task, None, traceback.format_exc())
                    else:
                        finish(task, value, None)
                run.check()
            else:
                _run_local(run, default_workers() if workers is None else workers, finish, tick)
    except Interrupted as e:
        bar.close()
        raise Interrupted(e.signum, finished, run.unfinished()) from None
    bar.close()
    out["seconds"] = time.perf_counter() - t0
    if failed:
        raise RuntimeError(f"{len(failed)} task(s) failed: {', '.join(failed)}")
    return out
