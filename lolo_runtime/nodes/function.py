"""``lolo/function``: a node whose behaviour is a Python module with ``handler(ev, ctx)``."""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from lolo_runtime.context import Context, SetupContext
from lolo_runtime.errors import NodeConfigError
from lolo_runtime.node import Node, NodeConfig
from lolo_runtime.types import Event


class FunctionParams(BaseModel):
    """Any params a function node is given; its handler reads them as ``ctx.params``."""

    model_config = ConfigDict(extra="allow")


class FunctionNode(Node):
    """Runs ``handler(ev, ctx)`` from the module named by ``handler:``.

    The module is imported once, when the flow loads, and lives as long as the app, so
    module-level variables (the tutorial's ``connections = {}``) keep their values
    between events. Two nodes naming the same file share one module. The module's
    folder is put first on ``sys.path``, so it can import modules beside it.
    """

    Params = FunctionParams
    inputs: ClassVar[tuple[str, ...]] = ("in",)
    outputs: ClassVar[tuple[str, ...]] = ("out",)
    ports_configurable = True
    accepts_handler = True

    def __init__(self, config: NodeConfig):
        super().__init__(config)
        self.params = dict(config.params.model_extra or {})
        if not config.handler:
            raise NodeConfigError("a function node needs 'handler: path/to/module.py'")
        self.module = load_handler_module(config.flow_dir / config.handler, config.handler)
        handler = getattr(self.module, "handler", None)
        if handler is None:
            raise NodeConfigError(
                f"{config.handler} has no 'handler' function; define 'async def handler(ev, ctx)'",
                "handler",
            )
        _check_signature(handler, config.handler, "handler", 2)
        self._setup = getattr(self.module, "setup", None)
        if self._setup is not None:
            _check_signature(self._setup, config.handler, "setup", 1)
        self._close = getattr(self.module, "close", None)
        if self._close is not None:
            _check_signature(self._close, config.handler, "close", 0)
        # The engine calls ``handle`` directly: the user's function is the node's behaviour.
        self.handle = handler  # type: ignore[method-assign]

    async def setup(self, ctx: SetupContext) -> None:
        if self._setup is not None:
            result = self._setup(ctx)
            if inspect.isawaitable(result):
                await result

    async def close(self) -> None:
        if self._close is not None:
            result = self._close()
            if inspect.isawaitable(result):
                await result

    async def handle(self, ev: Event, ctx: Context) -> None:  # replaced in __init__
        raise NotImplementedError


_MODULES: dict[Path, ModuleType] = {}


def load_handler_module(path: Path, shown: str) -> ModuleType:
    """Import the module at ``path`` once per process; errors name ``shown``."""
    resolved = path.resolve()
    cached = _MODULES.get(resolved)
    if cached is not None:
        return cached
    if not resolved.is_file():
        raise NodeConfigError(f"handler file {shown} does not exist ({resolved})", "handler")
    if resolved.suffix != ".py":
        raise NodeConfigError(f"handler file {shown} is not a .py file", "handler")
    name = f"lolo_handlers.{_module_name(resolved)}"
    spec = importlib.util.spec_from_file_location(name, resolved)
    if spec is None or spec.loader is None:
        raise NodeConfigError(f"cannot import handler file {shown}", "handler")
    module = importlib.util.module_from_spec(spec)
    # As Python does for a script, the handler's folder goes first on the import path, so
    # handlers can share helper modules that sit beside them.
    folder = str(resolved.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        del sys.modules[name]
        raise NodeConfigError(
            f"handler file {shown} does not import: SyntaxError: {exc.msg} (line {exc.lineno})",
            "handler",
        ) from None
    except Exception as exc:
        del sys.modules[name]
        raise NodeConfigError(
            f"handler file {shown} does not import: {type(exc).__name__}: {exc}", "handler"
        ) from None
    _MODULES[resolved] = module
    return module


def forget_handler_modules() -> None:
    """Drop every imported handler module, and the modules they imported from their own
    folders (``import history`` beside a handler), so the next load imports them afresh:
    in tests, module-level tables such as the tutorial's ``connections`` start empty."""
    for name in _handler_side_modules():
        del sys.modules[name]
    _MODULES.clear()


# --reload: which modules to import afresh, and putting the cache back when a load fails.


@dataclass(frozen=True)
class HandlerModules:
    """The handler module cache at one moment, with the import state that goes with it:
    the ``sys.modules`` entries of handler modules and of the helper modules they imported
    from their folders, and ``sys.path``."""

    cache: dict[Path, ModuleType]
    imported: dict[str, ModuleType]
    import_path: list[str]


def snapshot_handler_modules() -> HandlerModules:
    """What :func:`restore_handler_modules` puts back."""
    return HandlerModules(dict(_MODULES), _handler_side_modules(), list(sys.path))


def restore_handler_modules(snapshot: HandlerModules) -> None:
    """Put the module cache back exactly as ``snapshot`` saw it (a reload that failed):
    modules imported since are dropped, modules forgotten since come back."""
    for name in _handler_side_modules(extra_folders=_folders(snapshot.cache)):
        if name not in snapshot.imported:
            del sys.modules[name]
    sys.modules.update(snapshot.imported)
    _MODULES.clear()
    _MODULES.update(snapshot.cache)
    sys.path[:] = snapshot.import_path


def handler_module_files() -> set[Path]:
    """The (resolved) files of the handler modules imported so far."""
    return set(_MODULES)


def helper_module_files() -> dict[Path, str]:
    """The helper modules imported from a handler's folder (``import history`` beside a
    handler), by file: their name in ``sys.modules``."""
    helpers: dict[Path, str] = {}
    for name, module in _handler_side_modules().items():
        file = _file_of(module)
        if not name.startswith(_PACKAGE) and file is not None:
            helpers[file] = name
    return helpers


def forget_changed_modules(changed: Iterable[Path]) -> set[Path]:
    """Make the next load import afresh the handler modules whose file is in ``changed``;
    for a changed helper module, the helper and every handler module of its folder (each
    may hold the helper's old module, or names taken from it). Stale bytecode of each
    changed file is removed (an edit within the second it was compiled, keeping its size,
    would pass the bytecode cache's check). Returns the handler files forgotten."""
    changed = {path.resolve() for path in changed}
    helpers = helper_module_files()
    folders = {path.parent for path in changed if path in helpers}
    for path in changed & set(helpers):
        sys.modules.pop(helpers[path], None)
    forgotten = {path for path in _MODULES if path in changed or path.parent in folders}
    for path in forgotten:
        module = _MODULES.pop(path)
        if sys.modules.get(module.__name__) is module:
            del sys.modules[module.__name__]
    for path in changed:
        with contextlib.suppress(OSError, ValueError):
            Path(importlib.util.cache_from_source(str(path))).unlink()
    return forgotten


def _handler_side_modules(extra_folders: Iterable[Path] = ()) -> dict[str, ModuleType]:
    """The handler modules and the modules imported from their folders, by name."""
    # Helpers beside a handler are found through the resolved folder that
    # load_handler_module put on sys.path, so their __file__ starts with it as written:
    # comparing strings spares resolving the path of every module in sys.modules
    # (0.15 s a call, once per run_flow in tests).
    folders = {str(folder) for folder in _folders(_MODULES) | set(extra_folders)}
    found: dict[str, ModuleType] = {}
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if name.startswith(_PACKAGE) or (
            folders
            and isinstance(file, str)
            and file.endswith(".py")
            and os.path.dirname(file) in folders
        ):
            found[name] = module
    return found


def _folders(cache: Iterable[Path]) -> set[Path]:
    return {path.parent for path in cache}


def _file_of(module: ModuleType) -> Path | None:
    file = getattr(module, "__file__", None)
    if not isinstance(file, str) or not file.endswith(".py"):
        return None
    return Path(os.path.realpath(file))


_PACKAGE = "lolo_handlers."


def _module_name(path: Path) -> str:
    stem = "".join(ch if ch.isalnum() else "_" for ch in path.with_suffix("").as_posix())
    return stem.strip("_") or "handler"


def _check_signature(func: Any, shown: str, name: str, arity: int) -> None:
    if not callable(func):
        raise NodeConfigError(f"{shown}: '{name}' is not a function", "handler")
    try:
        inspect.signature(func).bind(*range(arity))
    except TypeError:
        args = {2: "ev, ctx", 1: "ctx", 0: ""}[arity]
        raise NodeConfigError(f"{shown}: '{name}' must accept ({args})", "handler") from None
    except ValueError:
        return  # builtins without a signature: trust them
