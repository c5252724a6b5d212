"""Meta-tests of the plugin contract: every hook spec is documented, tested and safe to scope.

As Datasette does: the reference (``docs/hooks.md``) and the tests cannot drift from
``crmcore/hookspecs.py``, and the pitfalls the design rules out are checked, not trusted.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from pathlib import Path
from typing import Any

import pytest

from crmcore import PluginInfo, hookimpl, hookspecs
from crmcore.plugins.manager import DEFAULT_PLUGINS, PluginLoadError, PluginRegistry, get_registry

ROOT = Path(__file__).resolve().parent.parent
HOOKS_MD = ROOT / "docs" / "hooks.md"
TESTS = ROOT / "tests"
HEADING = re.compile(r"^###\s+(crm_\w+)\((.*)\)\s*$")


def _specs() -> dict[str, Any]:
    """Spec name -> function, in the order of hookspecs.py."""
    return {name: fn for name, fn in vars(hookspecs).items()
            if name.startswith("crm_") and callable(fn) and hasattr(fn, "crmcore_spec")}


def _signature(name: str, fn: Any) -> str:
    return f"{name}({', '.join(inspect.signature(fn).parameters)})"


def _documented() -> list[tuple[str, str]]:
    """(hook name, heading text) for every ``### crm_...(...)`` heading, in document order."""
    out = []
    for line in HOOKS_MD.read_text(encoding="utf-8").splitlines():
        match = HEADING.match(line)
        if match:
            out.append((match.group(1), line[4:].strip()))
    return out


SPECS = _specs()


def test_there_are_specs_to_check():
    assert len(SPECS) >= 20
    assert set(SPECS) == {n for n in dir(hookspecs) if n.startswith("crm_")}


@pytest.mark.parametrize("name", sorted(SPECS))
def test_every_spec_has_a_heading_with_its_exact_signature(name):
    headings = dict(_documented())
    assert name in headings, f"docs/hooks.md has no heading for {name}"
    assert headings[name] == _signature(name, SPECS[name]), (
        f"docs/hooks.md documents {headings[name]!r}, the spec is {_signature(name, SPECS[name])!r}"
    )


def test_no_heading_names_a_hook_that_does_not_exist():
    documented = _documented()
    unknown = [heading for name, heading in documented if name not in SPECS]
    assert not unknown, f"docs/hooks.md documents hooks that are not specs: {unknown}"
    names = [name for name, _ in documented]
    assert len(names) == len(set(names)), "a hook is documented twice"


def test_headings_follow_the_order_of_hookspecs():
    assert [name for name, _ in _documented()] == list(SPECS)


def test_intro_covers_the_contract():
    text = HOOKS_MD.read_text(encoding="utf-8")
    for needle in ("provide", "validate", "default", "react", "page", "tenant-scoped", "install-wide",
                   "outbox", "ctx.plugin_settings(name)", "HOOK_API_VERSION", "PluginInfo.core_api",
                   "crm plugins check", "historic", "specname"):
        assert needle in text, f"docs/hooks.md does not explain {needle!r}"


def _test_function_names() -> set[str]:
    names: set[str] = set()
    for path in TESTS.rglob("test_*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                names.add(node.name)
    return names


@pytest.mark.parametrize("name", sorted(SPECS))
def test_every_spec_has_a_test(name):
    assert f"test_hook_{name}" in _test_function_names(), f"no test named test_hook_{name} under tests/"


@pytest.mark.parametrize("name", sorted(SPECS))
def test_no_tenant_scoped_spec_is_historic(name):
    fn = SPECS[name]
    opts = fn.crmcore_spec
    if "ctx" in inspect.signature(fn).parameters:
        assert not opts.get("historic"), f"{name} takes ctx but is historic: its history would mix businesses"


@pytest.mark.parametrize("name", sorted(SPECS))
def test_every_spec_says_when_it_was_added(name):
    doc = inspect.getdoc(SPECS[name]) or ""
    assert re.search(r"Added in \d+\.\d+", doc), f"the docstring of {name} lacks 'Added in X.Y'"


def _plugin_objects() -> list[tuple[str, Any]]:
    registry = get_registry()
    objects = [(registry.pm.get_name(obj) or repr(obj), obj) for obj in registry.pm.get_plugins()]
    objects += [(name, importlib.import_module(module)) for name, module in DEFAULT_PLUGINS]
    return objects


def test_no_registered_implementation_uses_specname():
    offenders = []
    for plugin_name, obj in _plugin_objects():
        for attr in dir(obj):
            opts = getattr(getattr(obj, attr, None), "crmcore_impl", None)
            if isinstance(opts, dict) and opts.get("specname"):
                offenders.append(f"{plugin_name}.{attr}")
    assert not offenders, f"implementations using specname: {offenders}"


#: default plugins a business may switch off (the design's "an essential subset cannot be disabled")
OPTIONAL_DEFAULTS = {"core-notifications"}


def test_default_plugins_are_registered_and_essential():
    registry = get_registry()
    for name, _module in DEFAULT_PLUGINS:
        assert name in registry.plugins
        assert registry.plugins[name].source == "core"
        assert registry.plugins[name].essential is (name not in OPTIONAL_DEFAULTS)


# -- the loader refuses what breaks the contract, naming the hook --------------------------------


class _UsesSpecname:
    @hookimpl(specname="crm_admin_menu")
    def menu(self, ctx):
        return []


class _Misspelled:
    @hookimpl
    def crm_admin_menus(self, ctx):
        return []


class _ExtraArgument:
    @hookimpl
    def crm_after_party_created(self, ctx, party, business):
        return None


class _NotAHookimpl:
    """Plain helpers without the marker are not hooks and do not count."""

    def crm_admin_menus(self):
        return []


@pytest.mark.parametrize(("plugin", "hook", "why"), [
    (_UsesSpecname(), "menu", "specname"),
    (_Misspelled(), "crm_admin_menus", "matches no hook spec"),
    (_ExtraArgument(), "crm_after_party_created", "business"),
])
def test_registering_a_broken_plugin_raises_naming_the_hook(plugin, hook, why):
    registry = PluginRegistry()
    with pytest.raises(PluginLoadError) as raised:
        registry.register("broken", plugin)
    message = str(raised.value)
    assert hook in message and why in message and "'broken'" in message
    assert "broken" not in registry.plugins
    assert registry.pm.get_plugin("broken") is None


def test_a_method_without_the_marker_is_not_a_hook():
    registry = PluginRegistry()
    registry.register("plain", _NotAHookimpl())
    assert "plain" in registry.plugins


def test_registering_a_plugin_for_another_core_api_raises():
    registry = PluginRegistry()
    with pytest.raises(PluginLoadError, match=r"needs core API >=2\.0"):
        registry.register("future", _NotAHookimpl(), info=PluginInfo(title="Future", core_api=">=2.0"))
