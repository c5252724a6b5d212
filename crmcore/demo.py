"""The demo business: an equipment dealer with realistic parties, deals in every stage, notes,
reminders and custom fields. Built only through the public services, like any intake path.

Then every installed plugin that needs no settings is enabled for it, and each adds its own
demo data through the hook ``crm_seed_demo`` (the core knows none of them)."""

from __future__ import annotations

import datetime as dt
import logging
import random
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from crmcore.context import use_case
from crmcore.errors import CrmError, NotFound, ValidationFailed
from crmcore.tenancy.models import Role

if TYPE_CHECKING:
    from crmcore.context import Context
    from crmcore.runtime import Crm

log = logging.getLogger("crmcore.demo")

DEMO_SLUG = "demo"
DEMO_OWNER = "demo@example.com"
DEMO_PASSWORD = "demo-password"  # a demo login, printed by `crm demo`; never used outside the demo
REPS = [("anna.berg@example.com", "Anna Berg"), ("tom.keller@example.com", "Tom Keller"),
        ("lena.vos@example.com", "Lena Vos")]

_FIRST = ["North", "Green", "Stone", "River", "Oak", "Iron", "Hill", "Lake", "Silver", "Bright", "Maple",
          "Granite", "Cedar", "Valley", "Summit", "Harbor", "Pine", "Meadow", "Copper", "Ridge"]
_SECOND = ["field", "wood", "bridge", "gate", "ford", "brook", "stead", "dale", "haven", "mark"]
_KIND = ["Farms", "Construction", "Landscaping", "Logistics", "Contractors", "Forestry", "Municipal Works",
         "Earthmoving", "Agri Services", "Rentals"]
_PEOPLE_FIRST = ["Maria", "Jonas", "Sofia", "Lukas", "Emma", "Noah", "Mia", "Elias", "Hannah", "Felix",
                 "Clara", "Paul", "Ida", "Oskar", "Nora", "Henrik", "Alma", "Viktor", "Greta", "Anton"]
_PEOPLE_LAST = ["Schmidt", "Jensen", "Meyer", "Larsen", "Novak", "Peeters", "Fischer", "Dubois", "Rossi",
                "Keller", "Bauer", "Moreau", "Hansen", "Wagner", "Janssen", "Costa"]
_CITIES = [("Utrecht", "3511", "NL"), ("Ghent", "9000", "BE"), ("Aarhus", "8000", "DK"), ("Freiburg", "79098", "DE"),
           ("Lyon", "69001", "FR"), ("Graz", "8010", "AT"), ("Linz", "4020", "AT"), ("Leuven", "3000", "BE")]
_MACHINES = ["Compact loader CL-35", "Excavator EX-140", "Telehandler TH-7", "Tractor T-95", "Mower ZM-60",
             "Wheel loader WL-220", "Mini excavator ME-18", "Skid steer SS-50"]
_JOB_TITLES = ["Fleet manager", "Owner", "Purchasing", "Site manager", "Operations director", "Workshop lead"]


def seed_demo(crm: Crm, *, parties: int = 60, seed: int = 7) -> list[str]:
    """Create the demo business once; returns lines to print. Running it again changes nothing."""
    from crmcore.auth.service import create_user, get_user
    from crmcore.tenancy.service import add_member, create_business, list_businesses

    if any(b.slug == DEMO_SLUG for b in list_businesses(crm)):
        return [f"demo business {DEMO_SLUG!r} already exists", f"login: {DEMO_OWNER} / {DEMO_PASSWORD}"]
    try:
        get_user(crm, DEMO_OWNER)
    except NotFound:
        create_user(crm, DEMO_OWNER, DEMO_PASSWORD, name="Demo Owner")
    business = create_business(crm, DEMO_SLUG, "Demo Equipment Ltd", currency="EUR", owner_email=DEMO_OWNER)
    owner_ctx = crm.context(DEMO_SLUG, DEMO_OWNER)
    rep_ids = []
    try:
        for email, name in REPS:
            try:
                user = get_user(crm, email)
            except NotFound:
                user = create_user(crm, email, DEMO_PASSWORD, name=name)
            add_member(owner_ctx, email, "member")
            rep_ids.append(user.id)
        counts = _seed_data(owner_ctx, rep_ids, parties, random.Random(seed))
        from crmcore.messaging.service import seed_default_templates

        counts["message templates"] = len(seed_default_templates(owner_ctx))
        plugin_lines = seed_plugins(owner_ctx)
    finally:
        owner_ctx.close()
    return [
        f"created demo business {business.slug!r} ({business.name})",
        *(f"  {n} {what}" for what, n in counts.items()),
        *plugin_lines,
        f"login: {DEMO_OWNER} / {DEMO_PASSWORD} (sales reps: {', '.join(e for e, _ in REPS)}, same password)",
    ]


def seed_plugins(ctx: Context) -> list[str]:
    """Enable the installed plugins that need no settings, then let each add its demo data
    (hook ``crm_seed_demo``); returns lines to print. The core's own plugins are left as they
    are, so with none installed this adds nothing and prints nothing."""
    enabled, left_off = _enable_plugins(ctx)
    lines = []
    if enabled:
        lines.append(f"plugins enabled: {', '.join(enabled)}")
    if left_off:
        lines.append("plugins left off (enable them with their settings under Settings, Plugins): "
                     + "; ".join(f"{name} ({why})" for name, why in left_off))
    seeded, failed = _call_seed_hooks(ctx)
    lines += [f"  {name}: {line}" for name, line in seeded]
    if failed:
        lines.append("demo data failed (rolled back, details in the log): "
                     + "; ".join(f"{name} ({why})" for name, why in failed))
    return lines


def _enable_plugins(ctx: Context) -> tuple[list[str], list[tuple[str, str]]]:
    """Enable every loaded plugin that is not the core's, in dependency order (the registry's).
    One that needs settings it lacks (credentials), or depends on a plugin left off, is skipped
    with the reason; nothing stops the demo."""
    from crmcore.plugins.service import enable_plugin

    enabled: list[str] = []
    left_off: list[tuple[str, str]] = []
    for name, plugin in list(ctx.crm.registry.plugins.items()):
        if plugin.source == "core":
            continue
        try:
            enable_plugin(ctx, name)
        except ValidationFailed as exc:
            left_off.append((name, "needs " + ", ".join(sorted(exc.errors)) if exc.errors else exc.message))
        except CrmError as exc:
            left_off.append((name, exc.message))
        except Exception as exc:  # a broken plugin must not break the demo
            log.exception("enabling plugin %s for the demo failed", name)
            left_off.append((name, f"{type(exc).__name__}: {exc}"))
        else:
            enabled.append(name)
    return enabled, left_off


def _call_seed_hooks(ctx: Context) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Call ``crm_seed_demo`` of each enabled plugin in dependency order (``tryfirst`` ones
    first, ``trylast`` ones last), each in a transaction of its own: a plugin that raises has
    its data rolled back, is recorded like any failing hook, and the others go on."""
    from crmcore.plugins.calls import _record_failure

    position = {name: i for i, name in enumerate(ctx.crm.registry.plugins)}

    def order(impl: Any) -> tuple[int, int]:
        return (0 if impl.tryfirst else 2 if impl.trylast else 1, position.get(impl.plugin_name, len(position)))

    seeded: list[tuple[str, str]] = []
    failed: list[tuple[str, str]] = []
    for impl in sorted(ctx.hooks.crm_seed_demo.get_hookimpls(), key=order):
        try:
            result = _seed_one(ctx, impl)
        except Exception as exc:  # one plugin's failure is its own
            _record_failure(ctx, "crm_seed_demo", impl.plugin_name, exc)
            failed.append((impl.plugin_name, f"{type(exc).__name__}: {exc}"))
            continue
        if isinstance(result, str):
            result = [result]
        seeded += [(impl.plugin_name, str(line)) for line in result or ()]
    return seeded, failed


@use_case(Role.OWNER)
def _seed_one(ctx: Context, impl: Any) -> Any:
    """One plugin's demo data, in one transaction (the services it calls join it)."""
    return impl.function(*[ctx for _ in impl.argnames])


def _seed_data(ctx, rep_ids: list[int], n_parties: int, rng: random.Random) -> dict[str, int]:
    from crmcore.fields.service import define_field
    from crmcore.parties.service import create_contact, create_party
    from crmcore.pipelines.service import list_pipelines
    from crmcore.records.service import close_lost, close_won, create_record, move_stage, qualify_lead
    from crmcore.timeline.service import add_note, add_reminder

    define_field(ctx, "party", {"key": "industry", "label": "Industry", "type": "choice", "position": 0,
                                "options": {"choices": [{"value": v, "label": v.title()} for v in
                                                        ("agriculture", "construction", "landscaping",
                                                         "forestry", "municipal", "rental")]}})
    define_field(ctx, "party", {"key": "fleet_size", "label": "Fleet size", "type": "integer", "position": 1,
                                "options": {"min": 0}})
    define_field(ctx, "party", {"key": "service_contract_until", "label": "Service contract until",
                                "type": "date", "position": 2})
    define_field(ctx, "record:deal", {"key": "machine_model", "label": "Machine model", "type": "text",
                                      "position": 0})
    define_field(ctx, "record:deal", {"key": "trade_in", "label": "Trade-in offered", "type": "checkbox",
                                      "position": 1})

    statuses = ["new", "contacted", "qualified", "proposal", "negotiation", "dormant"]
    potentials = ["low", "medium", "high", "strategic"]
    tags_pool = ["key account", "dealer event 2026", "newsletter", "fleet renewal", "financing"]
    industries = {"Farms": "agriculture", "Construction": "construction", "Landscaping": "landscaping",
                  "Forestry": "forestry", "Municipal Works": "municipal", "Rentals": "rental"}
    today = dt.date.today()
    parties = []
    used_names: set[str] = set()
    for i in range(n_parties):
        kind = _KIND[i % len(_KIND)]
        name = f"{rng.choice(_FIRST)}{rng.choice(_SECOND)} {kind}"
        while name in used_names:
            name = f"{rng.choice(_FIRST)}{rng.choice(_SECOND)} {kind}"
        used_names.add(name)
        city, postal, country = rng.choice(_CITIES)
        is_customer = i % 3 == 0
        slug = name.split()[0].lower()
        data = {
            "kind": "organisation", "name": name, "is_customer": is_customer, "is_prospect": not is_customer,
            "prospect_status": None if is_customer else rng.choice(statuses),
            "potential": rng.choice(potentials),
            "tags": rng.sample(tags_pool, rng.randint(0, 2)),
            "sales_rep_ids": [rng.choice(rep_ids)],
            "language": "en",
            "custom": {"industry": industries.get(kind, "construction"), "fleet_size": rng.randint(1, 80)},
            "mechanisms": [
                {"kind": "email", "value": f"info@{slug}.example", "is_primary": True},
                {"kind": "phone", "value": f"+31 30 {rng.randint(100, 999)} {rng.randint(1000, 9999)}"},
                {"kind": "website", "value": f"https://www.{slug}.example"},
            ],
            "addresses": [{"purpose": "billing", "line1": f"{rng.choice(_SECOND).title()}straat {rng.randint(1, 200)}",
                           "postal_code": postal, "city": city, "country": country, "is_default": True}],
        }
        if is_customer:
            data["custom"]["service_contract_until"] = (today + dt.timedelta(days=rng.randint(30, 700))).isoformat()
        party = create_party(ctx, data)
        parties.append(party)
        for _ in range(rng.randint(1, 2)):
            first, last = rng.choice(_PEOPLE_FIRST), rng.choice(_PEOPLE_LAST)
            create_contact(ctx, {"party_id": party.id, "first_name": first, "last_name": last,
                                 "job_title": rng.choice(_JOB_TITLES),
                                 "mechanisms": [{"kind": "email", "value": f"{first}.{last}@{slug}.example".lower()},
                                                {"kind": "mobile", "value": f"+31 6 {rng.randint(10000000, 99999999)}"}]})
    for first, last in [("Pieter", "de Boer"), ("Julia", "Maas"), ("Karl", "Huber")]:
        create_contact(ctx, {"first_name": first, "last_name": last, "notes": "Met at the dealer open day; company not yet known.",
                             "mechanisms": [{"kind": "email", "value": f"{first}.{last.replace(' ', '')}@mail.example".lower()}]})

    sales = next(p for p in list_pipelines(ctx, "deal") if p.is_default)
    stages = sorted(sales.stages, key=lambda s: s.position)
    open_stages = [s for s in stages if s.kind == "open"]
    deals = 0
    for i, party in enumerate(parties):
        machine = rng.choice(_MACHINES)
        deal = create_record(ctx, "deal", {
            "title": f"{machine} for {party.name}", "party_id": party.id,
            "amount": Decimal(rng.randrange(18_000, 240_000, 500)), "currency": "EUR",
            "expected_close_date": today + dt.timedelta(days=rng.randint(-10, 120)),
            "owner_id": rng.choice(rep_ids), "custom": {"machine_model": machine, "trade_in": rng.random() < 0.3},
        })
        deals += 1
        target = i % (len(open_stages) + 2)
        if target < len(open_stages):
            if open_stages[target].id != deal.stage_id:
                move_stage(ctx, deal.id, open_stages[target].id)
        elif target == len(open_stages):
            close_won(ctx, deal.id)
        else:
            close_lost(ctx, deal.id, rng.choice(["price", "competitor", "timing"]), note="Went with a rental instead.")
        if i % 4 == 0:
            add_note(ctx, party_id=party.id, record_id=deal.id,
                     body=f"Demo of the {machine} on site went well; they want a financing offer.")
    leads = 0
    for party in parties[:8]:
        lead = create_record(ctx, "lead", {"title": f"Web enquiry: {party.name}", "party_id": party.id})
        leads += 1
        if leads <= 2:
            qualify_lead(ctx, lead.id)
    for party in parties[:5]:
        create_record(ctx, "incident", {"title": f"Hydraulic leak reported by {party.name}", "party_id": party.id})
    now = dt.datetime.now(dt.UTC)
    for j, party in enumerate(parties[:6]):
        add_reminder(ctx, title=f"Call {party.name} about the offer", party_id=party.id,
                     due_at=now + dt.timedelta(hours=-30 + 12 * j))
    return {"parties": len(parties), "deals": deals, "leads": leads, "incidents": 5, "reminders": 6}
