"""Many streams in one process: each ``[[stream]]`` of a config file a ``Recorder`` into
its own sessions, all on one asyncio loop, each reconnecting on its own.

A stream that ends (``duration``, ``max_frames``) or fails (a fatal error, retries used
up) ends alone; the others go on. The process ends when every stream has ended, or on
``stop()``: SIGTERM and SIGINT stop every stream cleanly (each session closed
``complete``). ``reload()`` (SIGHUP) reads the file again: an invalid file is one log
line and nothing changes; otherwise a stream whose entry is unchanged goes on untouched
(same session, same connection), a removed one stops (its session complete), an added
one starts, and a changed one stops and starts again with its new entry (a new
session). Settings of the whole process that can't change while it runs (the data
root, the spool, ...) are a log line asking for a restart. Every change is one line.

The streams share the loop, so nothing a stream does at its start or end blocks it:
building its ``Recorder`` (a bucket root is asked whether it is there) and sealing its
last part and waiting for its uploads (``Recorder.run``) happen in threads. The metrics
endpoint (``metrics``) labels each stream by its name, and reports a stream that ended
failed, and is not recorded again, as down (``wsrec_up`` 0, ``/healthz`` 503) until a
reload removes or changes its entry.

The signal handlers only call ``stop()`` and ``reload()``, which are safe from any
thread, so tests call them directly::

    supervisor = Supervisor(load_config("wsrec.toml"))
    results = asyncio.run(supervisor.run())     # one StreamResult per recording
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from dataclasses import dataclass, replace
from typing import Callable, Mapping

from wsrec.errors import UsageError, WsrecError
from wsrec.record.recorder import Recorder, RecordResult, ignore_sighup, restore_sighup
from wsrec.logs import log, set_format
from wsrec.replay.relay import RelayOptions, serving
from wsrec.service.config import ServiceConfig, StreamConfig, load_config
from wsrec.service.metrics import FailedStream, MetricsServer
from wsrec.sim import SimThread, get_simulator

__all__ = ["Supervisor", "StreamResult", "run_config", "PROGRESS_INTERVAL"]

#: seconds between two calls of the ``progress`` callback
PROGRESS_INTERVAL = 0.5


@dataclass
class StreamResult:
    """How one recording of a stream ended (a changed stream has one per run)."""
    stream: str
    status: str                      # "complete" or "failed"
    error: str | None
    result: RecordResult | None      # None: it never started (e.g. no session folder)


class _Running:
    """A stream being recorded: its entry, recorder, task, simulator and live relays."""

    def __init__(self, config: StreamConfig):
        self.config = config
        self.recorder: Recorder | None = None
        self.task: asyncio.Task | None = None
        self.sim: SimThread | None = None
        self.relays = contextlib.ExitStack()   # ``serve``: stopped when the stream ends

    def release(self) -> None:
        """Stop the relays, then the simulator (blocking: run it in a thread)."""
        self.relays.close()
        if self.sim is not None:
            self.sim.stop()


def _stderr(line: str) -> None:
    log(line)


class Supervisor:
    """Run the streams of ``config`` (a ``ServiceConfig``) until they end or ``stop()``.

    ``data``: the data root ``reload`` gives ``load_config`` when the file names none
    (as at the start). ``environ``: where secrets are read (default ``os.environ``).
    ``log(line)``: one line per start, end and change (default: stderr).
    ``progress(statuses, final)``: called every ``PROGRESS_INTERVAL`` seconds and at the
    end with ``status()``. ``recorder``: more ``Recorder`` keywords (tests: clocks).
    ``quiet``: the streams' live relays (``serve``) write no line per client.
    """

    def __init__(self, config: ServiceConfig, *, data=None,
                 environ: Mapping[str, str] | None = None,
                 log: Callable[[str], None] | None = None, progress=None,
                 recorder: dict | None = None, quiet: bool = False):
        self.config = config
        self.metrics: MetricsServer | None = None   # running while ``config.metrics``
        self.default_data = data
        self.environ = environ
        self.log = log or _stderr
        self.progress = progress
        self.recorder_kwargs = dict(recorder or {})
        self.quiet = quiet
        self.running: dict[str, _Running] = {}
        # the streams that ended failed and are not recorded again: name -> (error, its
        # ended Recorder or None); reported down by the metrics until a reload clears it
        self.failed: dict[str, tuple[str, Recorder | None]] = {}
        self.results: list[StreamResult] = []
        self.stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._lock: asyncio.Lock | None = None
        self._busy = 0            # reloads and starts in progress: the run goes on
        self._tasks: set[asyncio.Task] = set()   # the streams' and the reloads'
        self._bug: BaseException | None = None   # what one of them raised unexpectedly
        self.ready: asyncio.Event | None = None  # set once the first streams started

    # -- what the signals call (any thread) ----------------------------------------------

    def stop(self) -> None:
        """Stop every stream cleanly (SIGTERM, SIGINT); the run then returns."""
        self._soon(self._stop)

    def reload(self) -> None:
        """Read the config file again and apply what changed (SIGHUP)."""
        self._soon(self._schedule_reload)

    def _soon(self, fn) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            fn()
        else:
            loop.call_soon_threadsafe(fn)

    def _stop(self, why: str = "stop") -> None:
        if self.stopping:
            return
        self.stopping = True
        self.log(f"{why}: stopping {len(self.running)} stream(s)")
        for run in self.running.values():
            if run.recorder is not None:
                run.recorder.stop()
        self._wake.set()

    def _schedule_reload(self) -> None:
        self._track(self._loop.create_task(self.reload_file()))

    def _track(self, task: asyncio.Task) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None and self._bug is None:
            self._bug = task.exception()
            self._wake.set()

    # -- state -----------------------------------------------------------------------------

    def status(self) -> list[dict]:
        """Each stream of the config: running or how it ended, its session and counts."""
        ended = {r.stream: r for r in self.results}
        out = []
        for cfg in self.config.streams:
            run = self.running.get(cfg.name)
            rec = run.recorder if run is not None else None
            last = ended.get(cfg.name)
            if rec is None and last is not None and last.result is not None:
                r = last.result
                counts = dict(session=f"{r.venue}/{r.session}", frames_in=r.frames_in,
                              frames_out=r.frames_out, bytes_in=r.bytes_in,
                              reconnects=r.reconnects)
            elif rec is not None:
                counts = dict(session=f"{rec.writer.venue}/{rec.writer.id}",
                              frames_in=rec.frames_in, frames_out=rec.frames_out,
                              bytes_in=rec.bytes_in, reconnects=rec.reconnects)
            else:
                counts = dict(session=None, frames_in=0, frames_out=0, bytes_in=0,
                              reconnects=0)
            state = "running" if rec is not None else "starting" if run is not None \
                else last.status if last is not None else "stopped"
            out.append({"stream": cfg.name, "venue": cfg.venue, "state": state, **counts,
                        "error": last.error if last is not None and rec is None else None})
        return out

    # -- running ---------------------------------------------------------------------------

    async def run(self) -> list[StreamResult]:
        """Start every stream, apply reloads, return once all have ended (the results in
        the order they ended). Installs the signal handlers when on the main thread."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self.ready = asyncio.Event()
        handled, hup = self._install_signals()
        ticker = asyncio.create_task(self._tick()) if self.progress else None
        try:
            self._integrations()
            async with self._lock:   # a reload waits for the first starts
                for cfg in self.config.streams:
                    if self.stopping:
                        break
                    await self._start(cfg)
            self.ready.set()
            while (self.running or self._busy) and self._bug is None:
                self._wake.clear()
                await self._wake.wait()
            if self._bug is not None:   # a bug: the ``finally`` closes the other sessions
                raise self._bug
        finally:
            if self.running:   # cancelled, or a bug: still close every session
                self._stop("ending")
                await asyncio.gather(*(r.task for r in list(self.running.values())
                                       if r.task is not None), return_exceptions=True)
            for task in list(self._tasks):
                task.cancel()
            if ticker is not None:
                ticker.cancel()
            self._remove_signals(handled, hup)
            if self.metrics is not None:
                self.metrics.stop()
                self.metrics = None
        if self.progress:
            self.progress(self.status(), True)
        return self.results

    async def _start(self, cfg: StreamConfig) -> None:
        """Start recording ``cfg`` (its simulator first); a stream that can't start ends
        failed at once, with one log line."""
        run = _Running(cfg)
        self.running[cfg.name] = run
        self.failed.pop(cfg.name, None)
        try:
            planned = cfg.request(self.environ)
            if cfg.sim is not None:
                run.sim = SimThread(get_simulator(cfg.venue, cfg.sim))
                planned.request.url = await asyncio.to_thread(run.sim.start)
                planned.request.env = {**planned.request.env,
                                       **run.sim.simulator.credentials()}
            if self.stopping:
                raise _NotStarted()
            # in a thread: a bucket root is asked whether it is there (the network), the
            # first session is created (the disk); the other streams go on meanwhile
            extras = self._extras(run, planned)
            run.recorder = await asyncio.to_thread(
                Recorder, planned.venue, planned.request, data=self.config.data,
                options=cfg.options, name=planned.name, args=planned.args,
                redact=cfg.redacted_names, signals=False, label=cfg.name, **extras,
                **self.recorder_kwargs)
        except (WsrecError, _NotStarted) as exc:
            del self.running[cfg.name]
            await asyncio.to_thread(run.release)
            if isinstance(exc, WsrecError):
                error = " ".join(str(exc).split())
                self.results.append(StreamResult(cfg.name, "failed", error, None))
                self.failed[cfg.name] = (error, None)
                self.log(f"{cfg.name}: failed to start: {error}")
            self._wake.set()
            return
        rec = run.recorder
        if self.stopping:   # the stop came while it was being built: it ends at once
            rec.stop()
        self.log(f"{cfg.name}: recording {cfg.venue}{' (simulator)' if cfg.sim else ''} "
                 f"into {rec.writer.venue}/{rec.writer.id}")
        run.task = asyncio.create_task(self._record(run))
        self._track(run.task)

    async def _record(self, run: _Running) -> None:
        name = run.config.name
        try:
            result = await run.recorder.run()
            self.results.append(StreamResult(name, result.status, result.error, result))
            where = f"{result.venue}/{result.session}"
            if result.status == "complete":
                self.log(f"{name}: complete ({result.stopped_by}): {result.frames_in:,} "
                         f"frames in, {result.reconnects} reconnects -> {where}")
            else:
                self.failed[name] = (result.error or "failed", run.recorder)
                self.log(f"{name}: failed: {result.error} ({where} marked failed)")
        except WsrecError as exc:
            error = run.recorder.redact(" ".join(str(exc).split()))
            self.results.append(StreamResult(name, "failed", error, None))
            self.failed[name] = (error, run.recorder)
            self.log(f"{name}: failed: {error}")
        finally:
            if self.running.get(name) is run:
                del self.running[name]
            self._busy += 1   # the run waits for the relays and the simulator to stop
            try:
                await asyncio.to_thread(run.release)
            finally:
                self._busy -= 1
            self._wake.set()

    async def _end(self, run: _Running, why: str) -> None:
        """Stop one stream (its session complete) and wait until it has ended."""
        if run.recorder is not None:
            run.recorder.finish(why)
        if run.task is not None:
            await asyncio.gather(run.task, return_exceptions=True)

    # -- reloading -------------------------------------------------------------------------

    async def reload_file(self) -> list[str]:
        """Read the config file again and apply it (see the module's docstring); returns
        the lines logged."""
        lines: list[str] = []

        def say(line):
            lines.append(line)
            self.log(line)

        async with self._lock:
            if self.stopping:
                return lines
            self._busy += 1
            try:
                await self._apply(say)
            finally:
                self._busy -= 1
                self._wake.set()
        return lines

    async def _apply(self, say) -> None:
        old = self.config
        try:
            new = load_config(old.path, data=self.default_data, environ=self.environ)
        except UsageError as exc:
            say(f"reload: {exc}; the streams go on as they were")
            return
        for key, value in new.settings().items():
            if value != old.settings()[key]:
                say(f"reload: {key} changed; restart wsrec to apply it (the streams keep "
                    f"the old one)")
        keep = dict(data=old.data, spool=old.spool, s3_endpoint=old.s3_endpoint,
                    metrics=old.metrics, log_format=old.log_format)
        streams = [replace(s, options=replace(s.options, spool=old.spool,
                                              s3_endpoint=old.s3_endpoint))
                   for s in new.streams]
        new = replace(new, streams=streams, **keep)
        before = {s.name: s for s in old.streams}
        after = {s.name: s for s in new.streams}
        removed = [n for n in before if n not in after]
        changed = [n for n in after if n in before and after[n] != before[n]]
        added = [n for n in after if n not in before]
        for name in removed:
            say(f"reload: {name}: removed; stopping it")
        for name in changed:
            say(f"reload: {name}: changed ({', '.join(before[name].changes(after[name]))}); "
                f"restarting it")
        for name in added:
            say(f"reload: {name}: added; starting it")
        if not (removed or changed or added):
            say("reload: no stream changed")
        ending = [self.running[n] for n in removed + changed if n in self.running]
        await asyncio.gather(*(self._end(run, "reload") for run in ending))
        for name in removed + changed:   # no longer reported failed
            self.failed.pop(name, None)
        self.config = new
        for cfg in new.streams:   # in the file's order
            if cfg.name in changed + added and not self.stopping:
                await self._start(cfg)

    # -- signals and progress --------------------------------------------------------------

    def _install_signals(self):
        """SIGINT/SIGTERM -> ``stop()``, SIGHUP -> ``reload()`` (main thread only)."""
        handled = []
        if threading.current_thread() is not threading.main_thread():
            return handled, None
        hup = ignore_sighup()   # what to put back at the end
        for sig, fn in ((signal.SIGINT, lambda: self._stop("SIGINT")),
                        (signal.SIGTERM, lambda: self._stop("SIGTERM")),
                        (getattr(signal, "SIGHUP", None), self._schedule_reload)):
            if sig is None:
                continue
            try:
                self._loop.add_signal_handler(sig, fn)
                handled.append(sig)
            except (NotImplementedError, RuntimeError, ValueError):
                pass
        return handled, hup

    def _remove_signals(self, handled, hup) -> None:
        for sig in handled:
            self._loop.remove_signal_handler(sig)
        if hup is not None:   # asyncio left SIG_DFL: put back what was there before
            restore_sighup(hup)

    async def _tick(self) -> None:
        while True:
            self.progress(self.status(), False)
            await asyncio.sleep(PROGRESS_INTERVAL)

    # -- what a stream asks beyond recording: one place --------------------------------------
    # The live relay (``serve``: ``wsrec.replay.relay.Relay`` through ``Recorder(taps=)``),
    # the metrics endpoint (``metrics``) and JSON logs (``log_format``) are parsed and
    # checked by ``wsrec.service.config``; they are connected here, and only here.

    def _extras(self, run: _Running, planned) -> dict:
        """More ``Recorder`` keywords: the taps of the stream's live relays (``serve``),
        started now and stopped by ``run.release``."""
        cfg = run.config
        if not cfg.serve:
            return {}
        venue = planned.venue.name
        return run.relays.enter_context(serving(
            cfg.serve, venue, planned.request,
            RelayOptions(max_lag=cfg.serve_max_lag, quiet=self.quiet,
                         msgpack=venue == "alpaca")))

    def _integrations(self) -> None:
        """The process-wide ones: JSON logs (a file's ``log_format = "json"``; "text", the
        default, leaves ``wsrec --log-format`` as given) and the metrics endpoint, which
        reports every stream being recorded, and those that ended failed (not restarted)
        as down; a port in use fails before any starts."""
        if self.config.log_format == "json":
            set_format("json")
        if self.config.metrics:
            self.metrics = MetricsServer(self.config.metrics, self._streams)
            self.metrics.start()

    def _streams(self) -> list:
        """What the metrics report (their thread calls it): the running recorders, and a
        ``FailedStream`` for each stream that ended failed."""
        out: list = [r.recorder for r in list(self.running.values())
                     if r.recorder is not None]
        venues = {s.name: s.venue for s in self.config.streams}
        for name, (error, rec) in list(self.failed.items()):
            if name not in self.running:
                out.append(FailedStream(name, rec.venue.name if rec is not None
                                        else venues.get(name, ""), error,
                                        rec.stats() if rec is not None else None))
        return out


class _NotStarted(Exception):
    """A stop arrived while a stream was starting: it is not started (no result)."""


def run_config(path, *, data=None, environ: Mapping[str, str] | None = None, log=None,
               progress=None, quiet: bool = False) -> list[StreamResult]:
    """Check the config file at ``path`` (UsageError before anything connects), then
    record its streams until they end or a signal stops them (see ``Supervisor``)."""
    hup = ignore_sighup()   # from before the first session exists until the last closes
    try:
        config = load_config(path, data=data, environ=environ)
        supervisor = Supervisor(config, data=data, environ=environ, log=log,
                                progress=progress, quiet=quiet)
        return asyncio.run(supervisor.run())
    finally:
        restore_sighup(hup)
