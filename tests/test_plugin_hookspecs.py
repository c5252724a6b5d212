"""Hooks a plugin raises for other plugins (``PluginInfo.hookspecs``): added with the plugin,
implemented by plugins that depend on it, run through the outbox like the core's after-hooks,
and refused when they would clash with the core's contract or another plugin's."""

from __future__ import annotations

import types

import pytest
from sqlalchemy import select

from crmcore import PluginInfo, hookimpl, hookspec
from crmcore.outbox.models import OutboxMessage
from crmcore.plugins.manager import PluginLoadError


def _specs(**functions: object) -> types.SimpleNamespace:
    return types.SimpleNamespace(**functions)


def _widget_specs() -> types.SimpleNamespace:
    @hookspec
    def crm_after_widget_made(ctx, widget_name: str) -> None:
        """A widget was made."""

    @hookspec
    def crm_widget_colours(ctx) -> list[str] | None:
        """Colours other plugins offer."""

    return _specs(crm_after_widget_made=crm_after_widget_made, crm_widget_colours=crm_widget_colours)


#: one namespace for the whole process, as a plugin's module is (pluggy keeps specs for good)
WIDGET_SPECS = _widget_specs()


class Raiser:
    pass


def test_other_plugins_implement_a_plugins_hooks_per_business(register_plugin, ctx, other_ctx):
    heard: list[tuple[int, str]] = []

    class Listener:
        @hookimpl
        def crm_after_widget_made(self, ctx, widget_name):
            heard.append((ctx.business_id, widget_name))

        @hookimpl
        def crm_widget_colours(self, ctx):
            return ["teal"]

    raiser = register_plugin(Raiser(), name="widgets", info=PluginInfo(title="Widgets", hookspecs=WIDGET_SPECS),
                             enable_for=[ctx, other_ctx])
    listener = register_plugin(Listener(), name="widget-listener",
                               info=PluginInfo(title="Listener", depends=(raiser,)), enable_for=ctx)
    assert ctx.collect("crm_widget_colours") == [(listener, ["teal"])]
    assert other_ctx.collect("crm_widget_colours") == []  # not enabled there

    from crmcore.context import use_case

    @use_case()
    def make(context, name):
        context.emit("crm_after_widget_made", widget_name=name)

    make(ctx, "sprocket")
    make(other_ctx, "gear")  # no listener enabled in the other business: no job at all
    assert heard == [(ctx.business_id, "sprocket")]
    with ctx.crm.db.session(ctx.business_id) as session:
        topics = session.scalars(select(OutboxMessage.topic).where(OutboxMessage.plugin == listener)).all()
    assert topics == ["crm_after_widget_made"]


def test_registering_the_same_specs_again_is_allowed(register_plugin, crm):
    specs = WIDGET_SPECS
    name = register_plugin(Raiser(), name="widgets-a", info=PluginInfo(title="A", hookspecs=specs))
    crm.registry.unregister(name)
    register_plugin(Raiser(), name="widgets-b", info=PluginInfo(title="B", hookspecs=specs))


@pytest.mark.parametrize("spec_name, problem", [
    ("crm_after_party_created", "already defined elsewhere"),  # the core's own hook
    ("widget_made", "must start with crm_"),
])
def test_specs_that_clash_or_are_misnamed_are_refused(register_plugin, crm, spec_name, problem):
    def spec(ctx, party) -> None:
        """x"""

    spec.__name__ = spec_name
    specs = _specs(**{spec_name: hookspec(spec)})
    with pytest.raises(PluginLoadError, match=problem):
        register_plugin(Raiser(), name="clash", info=PluginInfo(title="Clash", hookspecs=specs))
    assert "clash" not in crm.registry.plugins


def test_specs_without_any_hookspec_are_refused(register_plugin):
    with pytest.raises(PluginLoadError, match="no @crmcore.hookspec"):
        register_plugin(Raiser(), name="empty", info=PluginInfo(title="Empty", hookspecs=_specs(x=1)))


def test_another_plugins_spec_cannot_be_redefined(register_plugin):
    register_plugin(Raiser(), name="widgets", info=PluginInfo(title="Widgets", hookspecs=WIDGET_SPECS))
    with pytest.raises(PluginLoadError, match="already defined elsewhere"):
        register_plugin(Raiser(), name="copycat", info=PluginInfo(title="Copy", hookspecs=_widget_specs()))


def test_an_implementation_of_a_hook_nobody_declared_is_refused(register_plugin):
    class Orphan:
        @hookimpl
        def crm_after_gizmo_made(self, ctx, gizmo):
            pass

    with pytest.raises(PluginLoadError, match="matches no hook spec"):
        register_plugin(Orphan(), name="orphan")
