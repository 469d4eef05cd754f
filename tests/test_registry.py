"""The node-type registry: built-in names, duplicates, suggestions, ``module:Class``,
lazy imports, and discovery of plugins through the ``lolo_runtime.nodes`` entry points.

Entry-point discovery is tested against real distributions: the example package under
``docs/examples/`` installed with pip into a temporary directory, and hand-written
``.dist-info`` directories (what an installed wheel leaves behind) for the broken cases.
"""

from __future__ import annotations

import importlib.metadata
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lolo_runtime.errors import RegistryError
from lolo_runtime.node import Node
from lolo_runtime.nodes.function import FunctionNode
from lolo_runtime.nodes.websocket import WebSocketTrigger
from lolo_runtime.registry import BUILTIN_TYPES, ENTRY_POINT_GROUP, Registry

# The pip install and the dist-info writer are shared with the end-to-end plugin tests.
from tests.test_plugins import install_example, write_dist_info


class Alpha(Node):
    pass


class Beta(Node):
    type_name = "beta/explicit"


# -- helpers --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def example_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install_example(tmp_path_factory.getbasetemp())


AddToPath = Callable[[Path], None]


@pytest.fixture
def add_to_path(monkeypatch: pytest.MonkeyPatch) -> Iterator[AddToPath]:
    """``add_to_path(dir)`` puts ``dir`` on ``sys.path`` for one test; afterwards the
    modules imported from it are forgotten, so no test sees another's imports."""
    added: list[str] = []

    def add(path: Path) -> None:
        monkeypatch.syspath_prepend(str(path))
        added.append(str(path))

    yield add
    for name, module in list(sys.modules.items()):
        module_file = getattr(module, "__file__", None) or ""
        if any(module_file.startswith(path) for path in added):
            del sys.modules[name]


def write_module(directory: Path, name: str, source: str) -> Path:
    path = directory / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    return path


# -- built-in types -------------------------------------------------------------------------


def test_builtin_types_are_registered_and_resolve() -> None:
    registry = Registry.default()
    names = registry.names()
    assert {"lolo/function", "lolo/websocket-trigger"} <= set(names)
    assert set(BUILTIN_TYPES) <= set(names)
    assert registry.resolve("lolo/function") is FunctionNode
    assert registry.resolve("lolo/websocket-trigger") is WebSocketTrigger
    assert names == sorted(names)


def test_every_builtin_type_is_a_node_class() -> None:
    registry = Registry.default()
    for name in BUILTIN_TYPES:
        assert issubclass(registry.resolve(name), Node), name


# -- registering ----------------------------------------------------------------------------


def test_register_and_resolve_a_class() -> None:
    registry = Registry()
    registry.register("test/alpha", Alpha, source="this test")
    assert registry.names() == ["test/alpha"]
    assert registry.resolve("test/alpha") is Alpha


def test_registering_a_name_twice_names_both_sources() -> None:
    registry = Registry()
    registry.register("test/alpha", Alpha, source="package 'first-dist'")
    with pytest.raises(RegistryError) as raised:
        registry.register("test/alpha", Beta, source="package 'second-dist'")
    message = str(raised.value)
    assert "'test/alpha'" in message
    assert "registered twice" in message
    assert "package 'first-dist'" in message
    assert "package 'second-dist'" in message
    assert registry.resolve("test/alpha") is Alpha  # the first registration stands


def test_a_lazy_entry_cannot_take_a_registered_name_either() -> None:
    registry = Registry()
    registry.register_lazy("test/alpha", "somewhere:Alpha", "package 'lazy-dist'")
    with pytest.raises(RegistryError, match=r"by package 'lazy-dist' and by code"):
        registry.register("test/alpha", Alpha)


def test_a_builtin_name_cannot_be_taken_again() -> None:
    registry = Registry.default()
    with pytest.raises(RegistryError, match=r"'lolo/function'.*built-in.*my plugin"):
        registry.register("lolo/function", Alpha, source="my plugin")


def test_an_empty_type_name_is_filled_in_with_the_registered_name() -> None:
    class Fresh(Node):
        pass

    registry = Registry()
    registry.register("test/fresh", Fresh)
    registry.register("test/beta", Beta)
    assert registry.resolve("test/fresh").type_name == "test/fresh"
    assert registry.resolve("test/beta").type_name == "beta/explicit"  # kept when set


# -- unknown names --------------------------------------------------------------------------


def test_an_unknown_type_suggests_the_closest_name() -> None:
    registry = Registry.default()
    with pytest.raises(RegistryError) as raised:
        registry.resolve("lolo/functoin")
    message = str(raised.value)
    assert "unknown node type 'lolo/functoin'" in message
    assert "did you mean 'lolo/function'?" in message
    assert "lolo/websocket-trigger" in message  # and lists what there is


def test_an_unknown_type_with_nothing_close_lists_the_known_types() -> None:
    registry = Registry()
    registry.register("test/alpha", Alpha)
    with pytest.raises(RegistryError) as raised:
        registry.resolve("zzzzzz")
    assert "did you mean" not in str(raised.value)
    assert "known types: test/alpha" in str(raised.value)


# -- module:Class ---------------------------------------------------------------------------


def test_module_class_form_resolves_a_node_subclass(tmp_path: Path, add_to_path: AddToPath) -> None:
    write_module(
        tmp_path,
        "reg_local_nodes",
        """
        from lolo_runtime.node import Node

        class Local(Node):
            outputs = ("out", "err")

        class Outer:
            class Inner(Node):
                pass
    """,
    )
    add_to_path(tmp_path)
    registry = Registry()
    local = registry.resolve("reg_local_nodes:Local")
    assert issubclass(local, Node)
    assert local.__name__ == "Local"
    assert local.outputs == ("out", "err")
    assert registry.resolve("reg_local_nodes:Outer.Inner").__qualname__ == "Outer.Inner"
    assert registry.names() == []  # the dotted form registers nothing


def test_module_class_form_of_a_builtin_class() -> None:
    registry = Registry()
    assert registry.resolve("lolo_runtime.nodes.function:FunctionNode") is FunctionNode


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("collections:OrderedDict", r"'collections:OrderedDict' is not a lolo_runtime\.node\.Node"),
        ("os.path:join", r"'os.path:join' is not a lolo_runtime\.node\.Node subclass"),
        ("lolo_runtime.node:NodeConfig", r"is not a lolo_runtime\.node\.Node subclass"),
        (
            "no_such_module_xq:Thing",
            r"cannot import 'no_such_module_xq' for "
            r"'no_such_module_xq:Thing'",
        ),
        ("lolo_runtime.node:NoSuchClass", r"'lolo_runtime.node' has no attribute 'NoSuchClass'"),
        ("lolo_runtime:node.Nope", r"'lolo_runtime' has no attribute 'node.Nope'"),
        ("lolo_runtime.node:", r"not of the form 'package\.module:Class'"),
    ],
)
def test_module_class_form_errors(target: str, expected: str) -> None:
    with pytest.raises(RegistryError, match=expected):
        Registry().resolve(target)


def test_a_malformed_lazy_target_is_reported_when_resolved() -> None:
    registry = Registry()
    registry.register_lazy("test/bad", "lolo_runtime.node", "this test")
    with pytest.raises(RegistryError, match=r"not of the form 'package\.module:Class'"):
        registry.resolve("test/bad")


def test_a_module_that_raises_on_import_is_reported(tmp_path: Path, add_to_path: AddToPath) -> None:
    write_module(tmp_path, "reg_exploding", "raise ZeroDivisionError('boom at import')\n")
    add_to_path(tmp_path)
    with pytest.raises(RegistryError) as raised:
        Registry().resolve("reg_exploding:Anything")
    assert "importing 'reg_exploding'" in str(raised.value)
    assert "ZeroDivisionError: boom at import" in str(raised.value)


# -- lazy loading ---------------------------------------------------------------------------


def test_a_lazy_entry_is_imported_only_when_resolved(
    tmp_path: Path, add_to_path: AddToPath
) -> None:
    write_module(
        tmp_path,
        "reg_lazy_nodes",
        """
        from lolo_runtime.node import Node

        class Lazy(Node):
            pass
    """,
    )
    add_to_path(tmp_path)
    registry = Registry()
    registry.register_lazy("test/lazy", "reg_lazy_nodes:Lazy", "this test")
    assert "reg_lazy_nodes" not in sys.modules
    assert "test/lazy" in registry.names()
    first = registry.resolve("test/lazy")
    assert "reg_lazy_nodes" in sys.modules
    assert first.__name__ == "Lazy"
    assert registry.resolve("test/lazy") is first  # loaded once, then cached


def test_a_broken_lazy_entry_fails_only_when_resolved() -> None:
    registry = Registry()
    registry.register("test/alpha", Alpha)
    registry.register_lazy("test/broken", "no_such_module_zz:Broken", "package 'broken-dist'")
    assert registry.names() == ["test/alpha", "test/broken"]
    assert registry.resolve("test/alpha") is Alpha  # the others are unaffected
    with pytest.raises(RegistryError, match=r"cannot import 'no_such_module_zz'"):
        registry.resolve("test/broken")
    with pytest.raises(RegistryError):  # and keeps failing: nothing half-loaded is cached
        registry.resolve("test/broken")


def test_a_lazy_entry_naming_a_non_node_fails_when_resolved() -> None:
    registry = Registry()
    registry.register_lazy("test/not-a-node", "collections:OrderedDict", "this test")
    with pytest.raises(RegistryError, match=r"'test/not-a-node' is not a lolo_runtime"):
        registry.resolve("test/not-a-node")


# -- entry points, through real distributions -----------------------------------------------


def test_the_installed_example_package_is_discovered(
    example_site: Path, add_to_path: AddToPath
) -> None:
    add_to_path(example_site)
    dist = importlib.metadata.distribution("lolo-example-nodes")
    assert {ep.name for ep in dist.entry_points.select(group=ENTRY_POINT_GROUP)} == {
        "example/uppercase",
        "example/tap",
    }
    registry = Registry.default()
    assert {"example/uppercase", "example/tap", "lolo/function"} <= set(registry.names())
    assert "lolo_example_nodes.uppercase" not in sys.modules  # discovered, not imported
    uppercase = registry.resolve("example/uppercase")
    assert issubclass(uppercase, Node)
    assert (uppercase.__module__, uppercase.__name__) == (
        "lolo_example_nodes.uppercase",
        "Uppercase",
    )
    module_file = Path(sys.modules[uppercase.__module__].__file__ or "")
    assert module_file.is_relative_to(example_site)  # the installed copy, not the sources
    assert uppercase.type_name == "example/uppercase"
    assert registry.resolve("example/tap").__name__ == "Tap"


def test_a_plugin_name_registered_again_names_the_distribution(
    example_site: Path, add_to_path: AddToPath
) -> None:
    add_to_path(example_site)
    registry = Registry.default()
    with pytest.raises(RegistryError) as raised:
        registry.register("example/uppercase", Alpha, source="a local module")
    assert "package 'lolo-example-nodes'" in str(raised.value)
    assert "a local module" in str(raised.value)


def test_two_distributions_claiming_one_name_are_an_error(
    example_site: Path, tmp_path: Path, add_to_path: AddToPath
) -> None:
    add_to_path(example_site)
    add_to_path(
        write_dist_info(
            tmp_path / "site", "lolo-copycat", {"example/uppercase": "lolo_copycat:Upper"}
        )
    )
    with pytest.raises(RegistryError) as raised:
        Registry.default()
    message = str(raised.value)
    assert "'example/uppercase' is registered twice" in message
    assert "package 'lolo-example-nodes'" in message
    assert "package 'lolo-copycat'" in message


def test_a_plugin_claiming_a_builtin_name_is_an_error(
    tmp_path: Path, add_to_path: AddToPath
) -> None:
    add_to_path(
        write_dist_info(tmp_path / "site", "lolo-imposter", {"lolo/function": "lolo_imposter:Fake"})
    )
    with pytest.raises(RegistryError) as raised:
        Registry.default()
    message = str(raised.value)
    assert "'lolo/function' is registered twice" in message
    assert "lolo-runtime (built-in)" in message
    assert "package 'lolo-imposter'" in message


def test_a_plugin_that_does_not_import_fails_only_when_used(
    tmp_path: Path, add_to_path: AddToPath
) -> None:
    add_to_path(
        write_dist_info(
            tmp_path / "site", "lolo-broken", {"broken/node": "lolo_broken_missing:Node"}
        )
    )
    registry = Registry.default()  # discovering it imports nothing, so nothing fails yet
    assert "broken/node" in registry.names()
    assert registry.resolve("lolo/function") is FunctionNode
    with pytest.raises(RegistryError, match=r"cannot import 'lolo_broken_missing'"):
        registry.resolve("broken/node")
