"""The plugin contract: every hook a plugin may implement.

Each spec is a bare function whose docstring is its reference (rendered in ``docs/hooks.md``,
checked by ``tests/test_docs.py``). Names say the kind of hook:

========================  ==================================  ============================================
kind                      name form                           semantics
========================  ==================================  ============================================
provide                   ``crm_register_*``, ``crm_*_types``  install-wide; return contributions
                          ``crm_seed_demo``                   tenant-scoped: the demo business's data
validate                  ``crm_before_*``                    inside the write's transaction; may raise
                                                              :class:`crmcore.Veto`
default                   ``crm_*_defaults``                  when a create starts; return values to prefill
react                     ``crm_after_*``                     after commit, once per plugin, through the
                                                              outbox; retried, never undoes the write
page                      ``crm_admin_menu``, ``crm_*_panels``, when pages render
                          ``crm_record_statuses``
========================  ==================================  ============================================

Tenant-scoped hooks (every hook taking ``ctx``) are only called for the plugins enabled in
``ctx.business``. None of them is ``historic``; no implementation may use ``specname``.

A changed signature is a new spec; the old one keeps working for one minor version of
:data:`crmcore.HOOK_API_VERSION`. ``Added in`` gives the contract version a hook appeared in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from crmcore import hookspec

if TYPE_CHECKING:  # pragma: no cover - typing only
    from flask import Flask

    from crmcore.context import Context
    from crmcore.parties.models import Party
    from crmcore.pipelines.models import Stage
    from crmcore.records.models import Record


# ---------------------------------------------------------------------------------------------
# provide: install-wide, called on the global plugin manager


@hookspec
def crm_register_blueprints(app: Flask) -> list[Any] | None:
    """Return Flask blueprints to register on ``app``.

    Runs once per app, at ``create_app`` time, for every installed plugin (install-wide). A
    plugin's pages still answer 404 for a business that has not enabled it: the web layer checks
    enablement on every request routed to a plugin's blueprint. Added in 1.0.
    """


@hookspec
def crm_settings_schema() -> type | None:
    """Return the marshmallow ``Schema`` class of the plugin's per-business settings.

    Install-wide; called once per plugin when settings are shown, validated or saved. Fields with
    ``metadata={"secret": True}`` are encrypted at rest and never rendered back. Returning ``None``
    means "no settings". ``PluginInfo.settings_schema`` is the declarative alternative; when both
    are present the hook wins. Added in 1.0.
    """


@hookspec
def crm_seed_demo(ctx: Context) -> list[str] | None:
    """Add a little realistic data of the plugin to the demo business ``ctx.business``.

    Called once, when ``crm demo`` creates the demo business (never again for it, so it need not
    look for its own earlier data): after the core's data (parties, contacts, deals in every
    stage, leads) and after every installed plugin that needs no settings was enabled there, for
    each enabled implementer in dependency order (after the plugins it depends on; one marked
    ``@hookimpl(trylast=True)`` after the others). Create the data through public services,
    yours and those of the plugins you use; each plugin's call is one transaction, so an
    exception rolls back that plugin's data alone, is logged and printed, and the demo goes on.
    Return lines to print (``["12 products"]``) or None. Added in 1.2.
    """


# ---------------------------------------------------------------------------------------------
# validate: inside the transaction, before the write; raise crmcore.Veto to stop it


@hookspec
def crm_before_party_save(ctx: Context, party: Party, changes: dict[str, Any], created: bool) -> None:
    """Check a party about to be created or updated.

    Runs inside the transaction after the core's own validation, with the party's new values
    applied but not yet committed. ``changes`` maps field name to ``(old, new)``; ``created`` is
    True for a new party. Raise :class:`crmcore.Veto` to refuse the save (the message is shown to
    the user; nothing is written). Any other exception is logged against the plugin and ignored.
    Added in 1.0.
    """


@hookspec
def crm_before_record_save(ctx: Context, record: Record, changes: dict[str, Any], created: bool) -> None:
    """Check a record about to be created or updated through the core's record service (its
    forms, the API, another plugin).

    Runs inside the transaction after the core's own validation, with the new values applied
    but not yet written (a new record has no id yet). ``changes`` maps field name to
    ``[old, new]`` (``[None, value]`` for a new record's given fields); ``created`` is True for a
    new record. Raise :class:`crmcore.Veto` to refuse the save (the message is shown; nothing is
    written): a plugin keeps its own record types consistent this way (an issued invoice's party
    or amount is not edited behind its back). Stage moves have :func:`crm_before_stage_change`.
    Any other exception is logged against the plugin and ignored. Added in 1.2.
    """


@hookspec
def crm_before_stage_change(ctx: Context, record: Record, from_stage: Stage | None, to_stage: Stage) -> None:
    """Check a record about to move from ``from_stage`` to ``to_stage``.

    Runs inside the transaction of a stage move, a close (won or lost) and a reopen, before the
    record changes. Raise :class:`crmcore.Veto` to refuse the move; the user sees the message and
    the record stays where it was. Other exceptions are logged and ignored. Added in 1.0.
    """


@hookspec
def crm_before_party_merge(ctx: Context, kept: Party, duplicate: Party) -> None:
    """Move the plugin's own rows from ``duplicate`` to ``kept``, or refuse the merge.

    Runs inside the merge's transaction after the core has moved its own rows (contacts,
    addresses, records, timeline) and before ``duplicate`` is retired. Update every row of the
    plugin that points at ``duplicate.id`` to point at ``kept.id`` using ``ctx.session``. Raise
    :class:`crmcore.Veto` to stop the merge (everything is rolled back). Added in 1.0.
    """


# ---------------------------------------------------------------------------------------------
# default: prefill values when a create starts


@hookspec
def crm_record_defaults(ctx: Context, record_type: str, source: Record | None, party: Party | None) -> dict[str, Any] | None:
    """Return values to prefill a new record of ``record_type``.

    Runs when a create form or API create starts and again in the create service for the fields
    the caller did not give. ``source`` is the record the new one is created from ("next step"
    from a deal), or None; ``party`` the party it is created for, or None. Return a dict of
    record fields (``title``, ``party_id``, ``contact_id``, ``amount``, ``currency``,
    ``expected_close_date``, ``owner_id``) and/or ``custom`` (a dict of custom values). Results
    are merged in call order; the first plugin to give a key wins, and values the user typed
    always win. ``lines`` (a list of line dicts, for types whose documents have lines) is the
    exception: every plugin's lines are kept, in call order. Added in 1.0; ``lines`` in 1.1.
    """


@hookspec
def crm_party_defaults(ctx: Context, kind: str) -> dict[str, Any] | None:
    """Return values to prefill a new party of ``kind`` (``organisation`` or ``person``).

    Same merge rules as :func:`crm_record_defaults`. Added in 1.0.
    """


# ---------------------------------------------------------------------------------------------
# react: after commit, one outbox job per enabled plugin; retried with backoff


@hookspec
def crm_after_party_created(ctx: Context, party: Party) -> None:
    """React to a party that was created (committed). Runs from the outbox. Added in 1.0."""


@hookspec
def crm_after_party_updated(ctx: Context, party: Party, changes: dict[str, Any]) -> None:
    """React to a party that was updated. ``changes`` maps field to ``[old, new]`` (JSON
    values). Runs from the outbox. Added in 1.0."""


@hookspec
def crm_after_party_merged(ctx: Context, kept: Party, duplicate_id: int) -> None:
    """React to a merge: ``duplicate_id`` was merged into ``kept`` and is retired. Move rows in
    :func:`crm_before_party_merge`, not here. Runs from the outbox. Added in 1.0."""


@hookspec
def crm_after_record_created(ctx: Context, record: Record) -> None:
    """React to a record of any type that was created. Runs from the outbox. Added in 1.0."""


@hookspec
def crm_after_record_updated(ctx: Context, record: Record, changes: dict[str, Any]) -> None:
    """React to a record that was updated (not a stage move: see
    :func:`crm_after_stage_change`). ``changes`` maps field to ``[old, new]``. Added in 1.0."""


@hookspec
def crm_after_stage_change(ctx: Context, record: Record, from_stage: Stage | None, to_stage: Stage) -> None:
    """React to a stage move that was committed, including moves into closing stages and
    reopens. Runs from the outbox. Added in 1.0."""


@hookspec
def crm_after_record_won(ctx: Context, record: Record) -> None:
    """React to a record closed as won. Runs after :func:`crm_after_stage_change`'s job is
    queued, from the outbox. Added in 1.0."""


@hookspec
def crm_after_record_lost(ctx: Context, record: Record, lost_reason: str | None) -> None:
    """React to a record closed as lost; ``lost_reason`` is the reason's label. Added in 1.0."""


@hookspec
def crm_after_record_reopened(ctx: Context, record: Record) -> None:
    """React to a lost (or won) record that was reopened into an open stage. Added in 1.0."""


@hookspec
def crm_after_lead_qualified(ctx: Context, lead: Record, deal: Record) -> None:
    """React to a lead converted into ``deal`` (the lead is kept, closed and linked). Added in 1.0."""


@hookspec
def crm_after_plugin_enabled(ctx: Context, plugin: str) -> None:
    """Seed the plugin's data for ``ctx.business`` after the plugin ``plugin`` was enabled.

    Called for the enabled plugin only (``plugin`` is its own name), from the outbox. Must be
    idempotent: enabling, disabling and enabling again calls it twice. Added in 1.0.
    """


@hookspec
def crm_after_plugin_disabled(ctx: Context, plugin: str) -> None:
    """Let the plugin ``plugin`` stop its work for ``ctx.business`` (cancel timers, ...).

    Called for the disabled plugin only, from the outbox. Must not delete data: disabling keeps
    data so that enabling again shows it again. Added in 1.0.
    """


# ---------------------------------------------------------------------------------------------
# page: when pages render


@hookspec
def crm_admin_menu(ctx: Context) -> list[dict[str, Any]] | None:
    """Return admin menu entries for the current business and user.

    Each entry is a dict with ``label``, ``url`` (or ``endpoint``), optional ``section``
    (``main`` or ``settings``), ``icon`` and ``order``. Only called for enabled plugins, so a
    disabled plugin's entries disappear at once. Added in 1.0.
    """


@hookspec
def crm_record_panels(ctx: Context, record: Record) -> list[dict[str, Any]] | None:
    """Return panels to show on ``record``'s page.

    Each panel is a dict with ``title`` and ``html`` (a ``markupsafe.Markup`` the plugin built
    with escaping) and optional ``order``. Keep it cheap: it runs on every page view. Added in 1.0.
    """


@hookspec
def crm_party_panels(ctx: Context, party: Party) -> list[dict[str, Any]] | None:
    """Return panels to show on ``party``'s sheet; same shape as :func:`crm_record_panels`.
    Added in 1.0."""


@hookspec
def crm_record_statuses(ctx: Context, record_type: str, records: list[Record]) -> dict[int, str] | None:
    """Return the status your plugin keeps for its own records, by record id.

    A record of a type without a pipeline (a quote, an invoice, an order) is ``open`` to the
    core for its whole life; its plugin knows it as "sent", "partly paid" or "fulfilled". The
    core asks once per page for all the records of ``record_type`` it shows (the record's page,
    record lists, the party sheet), so answer with one query, not one per record. Return a dict
    ``{record_id: status}`` (a short lower-case word or two, shown as a badge instead of the
    core's ``open``), or None when ``record_type`` is not one of your types. Only the answer of
    the plugin that provides ``record_type`` is used. Added in 1.2.
    """
