"""Business-defined lists: seeded defaults, resolving options, admin edits, roles, isolation."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from crmcore.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from crmcore.lists import service as lists
from crmcore.lists.models import CORE_LISTS, ChoiceOption


def _values(ctx, key, **kw):
    return [o.value for o in lists.list_options(ctx, key, **kw)]


def test_new_business_gets_the_default_lists(ctx):
    assert set(lists.LIST_DEFAULTS) == set(CORE_LISTS)
    assert _values(ctx, "prospect_status") == ["new", "contacted", "qualified", "proposal", "negotiation",
                                               "dormant"]
    assert _values(ctx, "potential_level") == ["low", "medium", "high", "strategic"]
    assert "no_budget" in _values(ctx, "lost_reason")
    assert _values(ctx, "stakeholder_role")[0] == "decision_maker"
    assert "sales_engineer" in _values(ctx, "team_role")
    assert _values(ctx, "competitor") == []


def test_seeding_twice_adds_nothing(ctx):
    before = ctx.session.scalar(select(func.count()).select_from(ChoiceOption))
    ctx.session.rollback()
    lists.seed_defaults(ctx)
    ctx.session.commit()
    assert ctx.session.scalar(select(func.count()).select_from(ChoiceOption)) == before


def test_resolve_by_value_or_id(ctx):
    qualified = lists.resolve_option(ctx, "prospect_status", "qualified", field="status")
    assert qualified.label == "Qualified"
    assert lists.resolve_option(ctx, "prospect_status", qualified.id, field="status") is qualified
    assert lists.resolve_option(ctx, "prospect_status", str(qualified.id), field="status") is qualified
    assert lists.resolve_option(ctx, "prospect_status", " Qualified ", field="status") is qualified
    assert lists.resolve_option(ctx, "prospect_status", None, field="status") is None
    assert lists.resolve_option(ctx, "prospect_status", "", field="status") is None


def test_resolve_unknown_names_the_field_and_the_choices(ctx):
    with pytest.raises(ValidationFailed) as exc:
        lists.resolve_option(ctx, "prospect_status", "bogus", field="prospect_status")
    message = exc.value.errors["prospect_status"][0]
    assert "'bogus'" in message and "new, contacted" in message
    high = lists.resolve_option(ctx, "potential_level", "high", field="potential")
    with pytest.raises(ValidationFailed):  # an id of another list
        lists.resolve_option(ctx, "prospect_status", high.id, field="prospect_status")
    with pytest.raises(ValidationFailed):
        lists.resolve_option(ctx, "prospect_status", True, field="prospect_status")


def test_resolve_inactive_is_refused_unless_kept(ctx):
    dormant = lists.resolve_option(ctx, "prospect_status", "dormant", field="s")
    lists.deactivate_option(ctx, dormant.id)
    with pytest.raises(ValidationFailed) as exc:
        lists.resolve_option(ctx, "prospect_status", "dormant", field="prospect_status")
    assert "deactivated" in exc.value.errors["prospect_status"][0]
    assert lists.resolve_option(ctx, "prospect_status", "dormant", field="s", keep=dormant.id).id == dormant.id
    assert "dormant" not in _values(ctx, "prospect_status")
    assert "dormant" in _values(ctx, "prospect_status", include_inactive=True)


def test_add_option_goes_last_and_validates(ctx):
    option = lists.add_option(ctx, "competitor", {"value": "globex", "label": " Globex Corp ", "color": "#ff0000"})
    assert (option.label, option.position, option.is_active) == ("Globex Corp", 0, True)
    second = lists.add_option(ctx, "competitor", {"value": "initech", "label": "Initech"})
    assert second.position == 1
    with pytest.raises(Conflict):
        lists.add_option(ctx, "competitor", {"value": "globex", "label": "Again"})
    with pytest.raises(ValidationFailed) as exc:
        lists.add_option(ctx, "competitor", {"value": "Bad Value", "label": "", "color": "not a colour!",
                                             "extra": 1})
    assert set(exc.value.errors) == {"value", "label", "color", "extra"}
    with pytest.raises(ValidationFailed) as exc:
        lists.add_option(ctx, "Not A Key", {"value": "x", "label": "X"})
    assert "list_key" in exc.value.errors
    assert _values(ctx, "competitor") == ["globex", "initech"]


def test_plugin_lists_use_a_prefix(ctx):
    option = lists.add_option(ctx, "quoting.validity", {"value": "days_30", "label": "30 days"})
    assert lists.resolve_option(ctx, "quoting.validity", "days_30", field="validity").id == option.id


def test_update_option_changes_label_not_value(ctx):
    new = lists.resolve_option(ctx, "prospect_status", "new", field="s")
    lists.update_option(ctx, new.id, {"label": "Fresh", "color": "green"})
    ctx.session.expire_all()
    assert ctx.session.get(ChoiceOption, new.id).label == "Fresh"
    with pytest.raises(ValidationFailed) as exc:
        lists.update_option(ctx, new.id, {"value": "fresh"})
    assert "value" in exc.value.errors
    with pytest.raises(ValidationFailed):
        lists.update_option(ctx, new.id, {"label": "  "})


def test_deactivate_and_reactivate(ctx):
    low = lists.resolve_option(ctx, "potential_level", "low", field="p")
    lists.deactivate_option(ctx, low.id)
    assert "low" not in _values(ctx, "potential_level")
    lists.update_option(ctx, low.id, {"is_active": True})
    assert _values(ctx, "potential_level")[0] == "low"


def test_reorder(ctx):
    ids = {o.value: o.id for o in lists.list_options(ctx, "potential_level")}
    lists.reorder_options(ctx, "potential_level", [ids["strategic"], ids["high"]])
    assert _values(ctx, "potential_level") == ["strategic", "high", "low", "medium"]
    new_id = lists.resolve_option(ctx, "prospect_status", "new", field="s").id
    with pytest.raises(ValidationFailed):
        lists.reorder_options(ctx, "potential_level", [new_id])
    with pytest.raises(ValidationFailed):
        lists.reorder_options(ctx, "potential_level", [ids["low"], ids["low"]])
    assert _values(ctx, "potential_level") == ["strategic", "high", "low", "medium"]


def test_members_read_admins_edit(ctx, business, make_user):
    member = make_user(business, "member")
    reader = make_user(business, "read_only")
    assert _values(reader, "potential_level")
    with pytest.raises(PermissionDenied):
        lists.add_option(member, "competitor", {"value": "x", "label": "X"})
    option_id = lists.list_options(ctx, "potential_level")[0].id
    with pytest.raises(PermissionDenied):
        lists.deactivate_option(member, option_id)
    admin = make_user(business, "admin")
    assert lists.add_option(admin, "competitor", {"value": "x", "label": "X"}).value == "x"


def test_other_business_options_are_invisible(ctx, other_ctx):
    theirs = lists.add_option(other_ctx, "competitor", {"value": "secret", "label": "Secret"})
    assert _values(ctx, "competitor") == []
    with pytest.raises(NotFound):
        lists.update_option(ctx, theirs.id, {"label": "Mine now"})
    with pytest.raises(ValidationFailed):
        lists.resolve_option(ctx, "competitor", theirs.id, field="competitor")
