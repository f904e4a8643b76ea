"""Where a batch's jobs run: this process, local worker processes, or a Dask cluster.

Every backend has ``run(chains, on_result, on_step)`` (:class:`cmsr.batches.run.Backend`):
it runs each :class:`~cmsr.batches.run.Chain` (its jobs one after another, in one worker,
each handing its warm-start state to the next) and calls ``on_result`` in the
caller's thread for each finished job, as soon as it finishes. All of them run the
same function (:func:`cmsr.batches.run.run_job`) with the same torch thread count, so
they give the same numbers for the same seed.

* :class:`InProcessBackend` (``--workers 0``): here, one job at a time; for
  debugging and small tests.
* :class:`LocalBackend` (the default): up to ``workers`` worker processes (started
  with ``spawn``, one per chain, so each job's memory is its own and a crash or a
  kill takes only its own chain), each with ``threads`` torch threads. Worker
  processes ignore SIGINT; on Ctrl-C the caller stops them.
* :class:`DaskBackend` (``--scheduler tcp://host:port`` or ``local-dask``): one
  Dask task per job; a warm-start chain is a chain of tasks, each depending on the
  one before, so they run one after another (Dask places each task where the
  previous one's state is, i.e. on the same worker). Needs ``distributed``
  (``pip install 'cmsr[cluster]'``), and cmsr installed on every worker.

:func:`plan_workers` sizes the local pool: by default one torch thread per worker
and as many workers as cores (on 2 cores: 2 workers x 1 thread, see its docstring).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

import torch

from cmsr.batches.plan import Chain, Job
from cmsr.batches.results import JobResult, input_hashes
from cmsr.batches.run import Backend, run_chain, run_job
from cmsr.errors import InputError, one_line
from cmsr.method.threads import torch_threads
from cmsr.method.train import StepInfo

__all__ = [
    "DEFAULT_THREADS_PER_WORKER",
    "LOCAL_DASK",
    "DaskBackend",
    "InProcessBackend",
    "LocalBackend",
    "make_backend",
    "plan_workers",
    "usable_cores",
]

DEFAULT_THREADS_PER_WORKER = 1
"""Torch threads per worker unless told otherwise (see :func:`plan_workers`)."""

LOCAL_DASK = "local-dask"
"""``--scheduler`` value that starts a Dask cluster on this machine."""

#: Seconds between training-step reports a worker process sends to the caller.
STEP_REPORT_INTERVAL = 0.5
#: Seconds a stopped worker process gets to end before it is killed.
STOP_TIMEOUT = 5.0

ResultCallback = Callable[[JobResult], None]
StepCallback = Callable[[str, StepInfo], None]


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    with contextlib.suppress(AttributeError, OSError):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def plan_workers(*, cores: int, workers: int | None = None, threads: int | None = None,
                 chains: int | None = None) -> tuple[int, int]:
    """How many worker processes, and torch threads in each, for a local run.

    Neither given: ``DEFAULT_THREADS_PER_WORKER`` (1) thread per worker and one worker
    per core. One given: the other fills the cores. Never more workers than chains
    (a warm-start batch is one chain, so one worker, which then gets all the cores).

    Why one thread per worker: a training step works on a small batch of 32x32
    patches through narrow convolutions, where much of the time is Python, autograd
    and optimizer bookkeeping that one thread does alone; two pairs side by side keep
    both cores busy all the time (reading, hashing, writing, scoring included),
    while two threads on one pair leave one idle for much of each step. The price is
    memory: two pairs in memory at once.

    Examples
    --------
    >>> plan_workers(cores=2)
    (2, 1)
    >>> plan_workers(cores=2, workers=1)
    (1, 2)
    >>> plan_workers(cores=8, threads=2, chains=3)
    (3, 2)
    >>> plan_workers(cores=2, chains=1)
    (1, 2)
    """
    if workers is not None and workers < 1:
        raise InputError(f"must be at least 1, got {workers}", source="--workers")
    if threads is not None and threads < 1:
        raise InputError(f"must be at least 1, got {threads}", source="--threads")
    if workers is None:
        workers = max(1, cores // (threads or DEFAULT_THREADS_PER_WORKER))
    if chains is not None:
        workers = max(1, min(workers, chains))
    if threads is None:
        threads = max(1, cores // workers)
    return workers, threads


# --------------------------------------------------------------------------- in process


class InProcessBackend:
    """Runs the chains here, one job at a time, with ``threads`` torch threads."""

    def __init__(self, threads: int | None = None) -> None:
        self.threads = threads

    def run(self, chains: Sequence[Chain], on_result: ResultCallback,
            on_step: StepCallback | None = None) -> None:
        """Run every chain in order (see :class:`cmsr.batches.run.Backend`)."""
        with torch_threads(self.threads):
            for chain in chains:
                for result in run_chain(chain, on_step=on_step):
                    on_result(result)


# --------------------------------------------------------------------------- processes


def _worker_main(conn: Connection, threads: int) -> None:
    """Body of a worker process: run the chains it is sent until it is sent None.

    Sends ``("step", scene, StepInfo)`` now and then, ``("result", JobResult)`` per
    job and ``("idle",)`` after each chain.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the caller decides when to stop
    torch.set_num_threads(threads)
    last = 0.0

    def step(name: str, info: StepInfo) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last >= STEP_REPORT_INTERVAL or info.step == info.max_steps:
            last = now
            conn.send(("step", name, info))

    while (chain := conn.recv()) is not None:
        for result in run_chain(chain, on_step=step):
            conn.send(("result", result))
        conn.send(("idle",))
    conn.close()


def _died(job: Job, exitcode: int | None) -> JobResult:
    """The result of a job whose worker process ended before reporting it."""
    how = f"ended with exit code {exitcode}"
    if exitcode is not None and exitcode < 0:
        with contextlib.suppress(ValueError):
            how = f"was killed by {signal.Signals(-exitcode).name}"
    return JobResult(job.name, "failed", error=f"the worker process {how} before the job "
                     "finished", key=job.key(), inputs=input_hashes(job))


@dataclass
class _Worker:
    """A worker process, its pipe, and the chain it runs (with the jobs it reported)."""

    process: Any
    conn: Connection
    chain: Chain | None = None
    reported: set[str] = field(default_factory=set)


class LocalBackend:
    """Worker processes on this machine: ``workers`` of them, each running chains.

    Each process runs one chain at a time with ``threads`` torch threads and reports
    steps and results through its own pipe, then takes the next chain. A process
    that dies (killed, out of memory) fails only the jobs of its chain it had not
    reported; a new process takes over the chains left.
    """

    def __init__(self, workers: int, threads: int) -> None:
        self.workers = max(1, workers)
        self.threads = max(1, threads)

    def run(self, chains: Sequence[Chain], on_result: ResultCallback,
            on_step: StepCallback | None = None) -> None:
        """Run every chain (see :class:`cmsr.batches.run.Backend`)."""
        context = multiprocessing.get_context("spawn")
        pending = list(reversed(chains))
        workers: dict[Connection, _Worker] = {}

        def give_work(worker: _Worker) -> None:
            worker.chain = pending.pop() if pending else None
            worker.reported = set()
            worker.conn.send(worker.chain)

        try:
            while pending or workers:
                while pending and len(workers) < self.workers:
                    parent, child = context.Pipe()
                    process = context.Process(target=_worker_main, args=(child, self.threads),
                                              daemon=True, name="cmsr-batch-worker")
                    process.start()
                    child.close()
                    workers[parent] = worker = _Worker(process, parent)
                    give_work(worker)
                for conn in wait(list(workers)):
                    assert isinstance(conn, Connection)
                    worker = workers[conn]
                    try:
                        message = conn.recv()
                    except (EOFError, OSError):  # the process ended
                        del workers[conn]
                        conn.close()
                        worker.process.join()
                        for job in worker.chain.jobs if worker.chain else ():
                            if job.name not in worker.reported:
                                on_result(_died(job, worker.process.exitcode))
                        continue
                    if message[0] == "step":
                        if on_step is not None:
                            on_step(message[1], message[2])
                    elif message[0] == "result":
                        worker.reported.add(message[1].scene)
                        on_result(message[1])
                    else:  # idle
                        give_work(worker)
        finally:
            for worker in workers.values():
                worker.process.terminate()
                worker.conn.close()
            for worker in workers.values():
                worker.process.join(STOP_TIMEOUT)
                if worker.process.is_alive():
                    worker.process.kill()
                    worker.process.join()


# --------------------------------------------------------------------------- dask


def _dask_threads() -> int:
    """Torch threads for a task on this Dask worker: its cores shared by its task slots."""
    try:
        from distributed import get_worker

        worker = get_worker()
        slots = int(getattr(worker.state, "nthreads", 0) or getattr(worker, "nthreads", 1))
    except (ImportError, ValueError, AttributeError):
        slots = 1
    return max(1, usable_cores() // max(1, slots))


def _dask_task(job: Job, previous: Any, threads: int | None) -> tuple[JobResult, Any]:
    """One job on a Dask worker; ``previous`` is the chain's start or the task before.

    Returns the result and the state the next job of the chain starts from (this
    job's, or the one it was given when it failed).
    """
    state = previous[1] if isinstance(previous, tuple) else previous
    with torch_threads(threads or _dask_threads()):
        result, new_state = run_job(job, init=state)
    return result, state if new_state is None else new_state


def _local_dask_config() -> dict[str, Any]:
    """Dask settings for a local cluster that trains as fast as local processes do.

    Dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_`` set, which also pins
    glibc's mmap threshold at 128 KiB: every large tensor becomes a fresh mmap, and
    training ran ~1.6x slower (mostly system time) than in :class:`LocalBackend`.
    The worker's statistical profiler samples every thread's stack each 10 ms under
    the GIL, which a one-task-per-worker training job does not need. A remote
    cluster's workers take their own configuration; set the same there.
    """
    import dask

    environ = {key: value for key, value in
               dask.config.get("distributed.nanny.pre-spawn-environ", {}).items()
               if key != "MALLOC_TRIM_THRESHOLD_"}
    return {"distributed.nanny.pre-spawn-environ": environ,
            "distributed.worker.profile.enabled": False}


class DaskBackend:
    """Jobs as tasks on a Dask distributed cluster.

    Parameters
    ----------
    address:
        A scheduler address (``tcp://host:8786``), or :data:`LOCAL_DASK` to start a
        ``distributed.LocalCluster`` of ``workers`` processes with one task slot each.
    workers:
        Worker processes of a local cluster.
    threads:
        Torch threads per task; None: the worker's cores divided by its task slots.
    processes:
        Local cluster only: False keeps the workers in this process (threads), as
        the tests do.
    """

    def __init__(self, address: str = LOCAL_DASK, *, workers: int = 1,
                 threads: int | None = None, processes: bool = True) -> None:
        self.address = address
        self.workers = max(1, workers)
        self.threads = threads
        self.processes = processes

    @contextlib.contextmanager
    def _client(self) -> Iterator[Any]:
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise InputError("needs the 'distributed' package: pip install 'cmsr[cluster]'",
                             source="--scheduler") from None
        if self.address != LOCAL_DASK:
            try:
                client = Client(self.address, timeout="20s")
            except (OSError, TimeoutError, ValueError) as error:
                raise InputError(f"cannot reach the Dask scheduler: {error}",
                                 source=self.address) from None
            with client:
                yield client
            return
        import dask

        with dask.config.set(_local_dask_config()), \
                LocalCluster(n_workers=self.workers, threads_per_worker=1,
                             processes=self.processes, dashboard_address=None,
                             silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
            yield client

    def run(self, chains: Sequence[Chain], on_result: ResultCallback,
            on_step: StepCallback | None = None) -> None:
        """Run every chain (see :class:`cmsr.batches.run.Backend`); no per-step reports."""
        if not chains:
            return
        from distributed import as_completed

        token = uuid.uuid4().hex[:8]
        with self._client() as client:
            futures: dict[Any, Job] = {}
            try:
                for chain in chains:
                    previous: Any = chain.init
                    for job in chain.jobs:
                        future = client.submit(_dask_task, job, previous, self.threads,
                                               key=f"cmsr-batch-{token}-{job.name}",
                                               pure=False)
                        futures[future] = job
                        previous = future
                for future in as_completed(list(futures)):
                    job = futures[future]
                    try:
                        result = future.result()[0]
                    except Exception as error:  # a lost worker, a failed dependency
                        result = JobResult(job.name, "failed", error=one_line(error),
                                           key=job.key(), inputs=input_hashes(job))
                    on_result(result)
            finally:
                client.cancel(list(futures))


# --------------------------------------------------------------------------- choice


def make_backend(scheduler: str | None, *, workers: int | None, threads: int | None,
                 chains: int) -> tuple[Backend, str]:
    """The backend the options ask for, and a one-line description of it.

    ``scheduler`` None: local processes (``workers == 0``: in this process);
    :data:`LOCAL_DASK`: a local Dask cluster; else a Dask scheduler address.
    """
    cores = usable_cores()
    if scheduler is None and workers == 0:
        threads = threads or cores
        return InProcessBackend(threads), f"in this process, {threads} torch thread(s)"
    if scheduler is None or scheduler == LOCAL_DASK:
        workers, threads = plan_workers(cores=cores, workers=workers, threads=threads,
                                        chains=chains)
        where = "a local Dask cluster" if scheduler else "local processes"
        text = f"on {where}: {workers} worker(s) x {threads} torch thread(s) on {cores} core(s)"
        if scheduler is None:
            return LocalBackend(workers, threads), text
        return DaskBackend(LOCAL_DASK, workers=workers, threads=threads), text
    if not scheduler.startswith(("tcp://", "tls://", "ucx://", "inproc://", "ws://", "wss://")):
        raise InputError(f"expected {LOCAL_DASK} or a scheduler address such as "
                         "tcp://host:8786", source="--scheduler")
    text = f"on the Dask scheduler {scheduler}, " + (
        f"{threads} torch thread(s) per task" if threads else "torch threads = worker cores "
        "/ task slots")
    return DaskBackend(scheduler, threads=threads), text
