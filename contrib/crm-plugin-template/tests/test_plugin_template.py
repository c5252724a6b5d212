"""The plugin in a running core (fixtures from ``crmcore.testing``)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from crm_plugin_template import NAME, service
from crm_plugin_template.models import PluginTemplateBase

from crmcore import ValidationFailed
from crmcore.plugins.service import disable_plugin, enable_plugin
from crmcore.records.service import close_won, create_record
from crmcore.timeline.service import feed


def won_deal(ctx, title="Tractor X200", amount="1500.00"):
    deal = create_record(ctx, "deal", {"title": title, "amount": amount, "currency": "EUR"})
    return close_won(ctx, deal.id)


def test_discovered(crm):
    plugin = crm.registry.plugins[NAME]
    assert plugin.source == "entry_point"
    assert plugin.info.metadata is PluginTemplateBase.metadata


def test_remembers_wins_where_enabled(ctx, other_ctx):
    enable_plugin(ctx, NAME)
    deal = won_deal(ctx)
    won_deal(other_ctx)
    (win,) = service.wins(ctx)
    assert (win.record_id, win.amount, win.currency) == (deal.id, Decimal("1500.00"), "EUR")
    assert service.wins(other_ctx) == []


def test_a_repeated_job_remembers_a_win_once(ctx):
    enable_plugin(ctx, NAME)
    deal = won_deal(ctx)
    assert service.remember_win(ctx, deal).id == service.wins(ctx)[0].id
    ctx.session.commit()
    assert len(service.wins(ctx)) == 1


def test_disabled_it_does_nothing_and_keeps_its_rows(ctx):
    enable_plugin(ctx, NAME)
    won_deal(ctx, "First")
    disable_plugin(ctx, NAME)
    won_deal(ctx, "Second")
    assert len(service.wins(ctx)) == 1


def test_setting_switches_the_timeline_note(ctx):
    enable_plugin(ctx, NAME, {"add_timeline_note": False})
    quiet = won_deal(ctx, "Quiet")
    enable_plugin(ctx, NAME, {"add_timeline_note": True})
    loud = won_deal(ctx, "Loud")
    def notes(record):
        return [e.summary for e in feed(ctx, record_id=record.id, kinds=["plugin_template_win"]).items]

    assert notes(loud) == ["Win remembered: Loud"]
    assert notes(quiet) == []


def test_unknown_setting_is_refused(ctx):
    with pytest.raises(ValidationFailed) as exc:
        enable_plugin(ctx, NAME, {"add_timeline_notes": True})
    assert "add_timeline_notes" in exc.value.errors
