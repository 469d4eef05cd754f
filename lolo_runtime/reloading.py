"""``--reload``: watch the flow file and its handler modules; swap good edits in.

What is watched: the flow file, the handler module of every function node, and the helper
modules those handlers imported from their own folders (``import history``). The set is
computed again after each reload. The folders are watched (not the files: editors often
save by writing a new file and renaming it over the old one), and what changed is decided
by comparing each file's content with the running version's, so a save that changes nothing
reloads nothing.

On a change the new version is loaded and checked first, importing afresh only the handler
modules whose file changed (a changed helper: it and every handler module of its folder).
A broken version (a flow error, a handler that does not import, a change that needs a
restart, a node whose setup fails) is reported as ``path:line: message`` lines and the
running version is kept, with the module cache exactly as it was. A good one is swapped in
by :mod:`lolo_runtime.reloadswap`, as :mod:`lolo_runtime.reloadplan` decides. See
docs/reload.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from watchfiles import Change, awatch

from lolo_runtime.errors import FlowError, FlowErrors
from lolo_runtime.loader import Flow, load_flow
from lolo_runtime.nodes.function import (
    HandlerModules,
    forget_changed_modules,
    handler_module_files,
    helper_module_files,
    restore_handler_modules,
    snapshot_handler_modules,
)
from lolo_runtime.reloadplan import Refusal, ReloadPlan, plan_reload
from lolo_runtime.reloadswap import SwapFailed, SwapOutcome, swap_in
from lolo_runtime.yamlsource import line_at, read_yaml_file

if TYPE_CHECKING:
    from lolo_runtime.runtime import Runtime

log = logging.getLogger("lolo.reload")

DEBOUNCE_MS = 150
"""Changes this close together make one reload (an editor's save is several events)."""
STEP_MS = 50
IDLE_WAKE_MS = 1000
"""The watcher reports in at least this often; its first report means it is watching."""

Digests = dict[Path, str | None]


async def watch_and_reload(runtime: Runtime, stopping: asyncio.Event) -> None:
    """Run until cancelled (or ``stopping`` is set): reload ``runtime`` on each edit."""
    if not log.isEnabledFor(logging.DEBUG):
        # watchfiles says "1 change detected" at INFO; our own lines say what it did.
        logging.getLogger("watchfiles").setLevel(logging.WARNING)
    await Reloader(runtime).watch(stopping)


def watched_files(flow: Flow) -> frozenset[Path]:
    """The flow file, its handler modules, and the helper modules imported beside them."""
    handlers = {
        (node.config.flow_dir / node.config.handler).resolve()
        for node in flow.nodes.values()
        if node.accepts_handler and node.config.handler
    }
    folders = {path.parent for path in handlers}
    helpers = {path for path in helper_module_files() if path.parent in folders}
    return frozenset({flow.path.resolve(), *handlers, *helpers})


def content_digests(files: Iterable[Path]) -> Digests:
    """Each file's SHA-256 (None: it cannot be read, e.g. it is gone)."""
    digests: Digests = {}
    for path in files:
        try:
            digests[path] = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError:
            digests[path] = None
    return digests


class Reloader:
    """Watches one running app's files and reloads it when they change."""

    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        self.flow_path = runtime.flow.path  # as given on the command line
        self.files = watched_files(runtime.flow)
        self.running = content_digests(self.files)
        """The content of each watched file that the running version was loaded from."""
        self.broken = False
        """The last attempt failed: the files differ from the running version."""

    @property
    def folders(self) -> frozenset[Path]:
        return frozenset(path.parent for path in self.files)

    async def watch(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            folders = self.folders
            watcher = awatch(
                *sorted(folders),
                watch_filter=self._concerns,
                debounce=DEBOUNCE_MS,
                step=STEP_MS,
                stop_event=stopping,
                recursive=False,
                rust_timeout=IDLE_WAKE_MS,
                yield_on_timeout=True,
            )
            first = True
            async with contextlib.aclosing(watcher) as batches:
                async for changes in batches:
                    if first:
                        log.info(
                            "--reload: watching %d files in %d folders for changes",
                            len(self.files),
                            len(folders),
                        )
                    elif not changes:
                        continue  # the watcher's idle report
                    first = False  # the first report also catches up on earlier edits
                    try:
                        await self.reload_if_changed()
                    except Exception:
                        log.exception("reload of %s failed unexpectedly", self.flow_path)
                    if self.folders != folders:
                        break  # watch the new set of folders

    def _concerns(self, change: Change, path: str) -> bool:
        file = Path(path).resolve()
        return file in self.files or (self.broken and file.suffix in (".py", ".yaml", ".yml"))

    async def reload_if_changed(self) -> None:
        now = content_digests(self.files)
        changed = {path for path in self.files if now[path] != self.running.get(path)}
        if changed:
            await self.reload(changed, now)
        elif self.broken:
            self.broken = False
            log.info("%s: the files are back to the running version", self.flow_path)

    async def reload(self, changed: set[Path], digests: Digests) -> None:
        """Load the new version and swap it in, or report why not and keep the old one."""
        runtime = self.runtime
        before = snapshot_handler_modules()
        forget_changed_modules(changed - {self.flow_path.resolve()})
        try:
            new_flow = load_flow(self.flow_path)
        except FlowErrors as errors:
            restore_handler_modules(before)
            self._refuse([str(error) for error in errors.errors])
            return
        plan = plan_reload(runtime.flow, new_flow, listening=runtime.edge is not None)
        if plan.refusals:
            restore_handler_modules(before)
            self._refuse(_located(self.flow_path, plan.refusals))
            return
        try:
            outcome = await swap_in(runtime, new_flow, plan)
        except SwapFailed as failure:
            restore_handler_modules(before)
            self._refuse(_located(self.flow_path, [_where_node(new_flow, failure)]))
            return
        self.broken = False
        self.files = watched_files(runtime.flow)
        self.running = {**content_digests(self.files - set(digests)), **digests}
        self.running = {path: self.running[path] for path in self.files}
        fresh = _imported_afresh(before)
        for name in fresh:
            log.warning(
                "%s was imported afresh: its module-level variables start over "
                "(chains still running finish with the previous import)",
                name,
            )
        for warning in plan.warnings:
            log.warning("%s", warning)
        log.info("%s", _summary(self.flow_path, fresh, plan, outcome))

    def _refuse(self, lines: list[str]) -> None:
        """Report a version that cannot run, one ``path:line: message`` line each."""
        for line in lines:
            log.error("%s", line)
            print(line, file=sys.stderr, flush=True)
        log.warning(
            "reload of %s failed; the running version is kept (fix it and save again)",
            self.flow_path,
        )
        self.broken = True


def _imported_afresh(before: HandlerModules) -> list[str]:
    """The modules of ``before`` that are now other module objects, as paths to show."""
    shown: list[str] = []
    handlers = handler_module_files()
    for path, module in before.cache.items():
        if path in handlers and sys.modules.get(module.__name__) is not module:
            shown.append(_shown(path))
    helpers = {name: path for path, name in helper_module_files().items()}
    for name, module in before.imported.items():
        if name in helpers and sys.modules.get(name) is not module:
            shown.append(_shown(helpers[name]))
    return sorted(shown)


def _summary(path: Path, fresh: list[str], plan: ReloadPlan, outcome: SwapOutcome) -> str:
    modules = f"{_count(len(fresh), 'module')} re-imported"
    if fresh:
        modules += f" ({', '.join(Path(name).name for name in fresh)})"
    parts = [
        modules,
        f"{_count(len(plan.restarted), 'trigger')} restarted",
        f"{_count(outcome.sessions_kept, 'session')} kept",
    ]
    restarted = set(plan.restarted)
    started = [t.id for t in plan.started_triggers if t.id not in restarted]
    stopped = [t.id for t in plan.stopped_triggers if t.id not in restarted]
    if started:
        parts.append(f"started {', '.join(started)}")
    if stopped:
        parts.append(f"stopped {', '.join(stopped)}")
    if outcome.clients_closed:
        parts.append(f"{_count(outcome.clients_closed, 'client')} closed")
    if outcome.triggers_not_started:
        parts.append(f"NOT started: {', '.join(outcome.triggers_not_started)}")
    return f"reloaded {path}: {', '.join(parts)}"


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _shown(path: Path) -> str:
    """``path`` relative to the working folder when it is under it."""
    try:
        return os.path.relpath(path) if path.is_relative_to(Path.cwd()) else str(path)
    except (OSError, ValueError):
        return str(path)


def _where_node(flow: Flow, failure: SwapFailed) -> Refusal:
    for index, spec in enumerate(flow.spec.nodes):
        if spec.id == failure.node_id:
            return Refusal(("nodes", index, "id"), failure.message)
    return Refusal((), failure.message)


def _located(path: Path, refusals: list[Refusal]) -> list[str]:
    """Each refusal as ``path:line: message`` (the line found in the file as it is now)."""
    try:
        _, lines = read_yaml_file(path)
    except FlowError:
        lines = {}
    return [
        str(FlowError(refusal.message, path, line_at(lines, refusal.where))) for refusal in refusals
    ]
