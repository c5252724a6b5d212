"""The ``crm`` command line. Every command prints one clear line on a user error and exits 1."""

from __future__ import annotations

import functools
import json
import secrets
import sys
from collections.abc import Callable
from typing import Any

import click

from crmcore.config import Config
from crmcore.errors import CrmError


class CliState:
    def __init__(self, instance: str | None, database: str | None) -> None:
        self.instance = instance
        self.database = database
        self._crm: Any = None

    def config(self) -> Config:
        overrides = {"database_url": self.database} if self.database else {}
        return Config.load(self.instance, **overrides)

    @property
    def crm(self) -> Any:
        if self._crm is None:
            from crmcore.runtime import Crm

            self._crm = Crm.from_config(self.config())
        return self._crm


def handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn service errors into one line on stderr and exit status 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except CrmError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        except Exception as exc:
            from sqlalchemy.exc import OperationalError, ProgrammingError

            if isinstance(exc, OperationalError | ProgrammingError):
                click.echo(f"error: database: {exc.orig}. Did you run `crm db upgrade`?", err=True)
                sys.exit(1)
            raise

    return wrapper


pass_state = click.make_pass_decorator(CliState)


@click.group()
@click.option("--instance", envvar="CRM_INSTANCE_PATH", type=click.Path(file_okay=False),
              help="Instance folder (config, SQLite database, attachments). Default: ./instance")
@click.option("--database", envvar="CRM_DATABASE_URL", help="Database URL (default: SQLite in the instance folder)")
@click.version_option(package_name="crmcore", prog_name="crm")
@click.pass_context
def main(click_ctx: click.Context, instance: str | None, database: str | None) -> None:
    """crmcore: a plugin-based CRM core."""
    click_ctx.obj = CliState(instance, database)


# -- init and db -------------------------------------------------------------------------------


@main.command()
@click.option("--owner-email", help="Create this user (and make it owner of --business)")
@click.option("--owner-password", help="Password of the owner (prompted when omitted)")
@click.option("--business", "business_slug", help="Also create a business with this slug")
@click.option("--business-name", help="Name of that business")
@pass_state
@handle_errors
def init(state: CliState, owner_email: str | None, owner_password: str | None,
         business_slug: str | None, business_name: str | None) -> None:
    """Create the instance folder (with fresh keys), the database and an owner user."""
    from crmcore.auth.service import create_user
    from crmcore.migrations.runner import upgrade
    from crmcore.tenancy.service import create_business

    config = state.config().ensure_instance()
    state.instance = str(config.instance_path)
    crm = state.crm
    upgrade(crm.db.engine, crm.registry)
    click.echo(f"instance: {config.instance_path}")
    click.echo(f"database: {crm.db.engine.url.render_as_string(hide_password=True)} (up to date)")
    if owner_email:
        if owner_password is None:
            owner_password = click.prompt("Owner password", hide_input=True, confirmation_prompt=True)
        user = create_user(crm, owner_email, owner_password)
        click.echo(f"user: {user.email}")
    if business_slug:
        business = create_business(crm, business_slug, business_name or business_slug,
                                   owner_email=owner_email)
        click.echo(f"business: {business.slug} ({business.name})")


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@pass_state
@handle_errors
def db_upgrade(state: CliState) -> None:
    """Migrate the core, then every installed plugin in dependency order."""
    from crmcore.migrations.runner import upgrade

    for name, before, after in upgrade(state.crm.db.engine, state.crm.registry):
        change = "up to date" if before == after else f"{before or '(empty)'} -> {after}"
        click.echo(f"{name}: {change}")


@db.command("status")
@pass_state
@handle_errors
def db_status(state: CliState) -> None:
    """Current and head revision of the core and each plugin."""
    from crmcore.migrations.runner import status

    for name, current, head in status(state.crm.db.engine, state.crm.registry):
        flag = "" if current == head else "  (needs upgrade)"
        click.echo(f"{name}: {current or '(empty)'} / head {head}{flag}")


# -- businesses and users ------------------------------------------------------------------------


@main.group()
def businesses() -> None:
    """Businesses (tenants)."""


@businesses.command("create")
@click.argument("slug")
@click.argument("name")
@click.option("--currency", default="EUR", show_default=True)
@click.option("--language", default="en", show_default=True)
@click.option("--owner", "owner_email", help="An existing user who becomes the owner")
@pass_state
@handle_errors
def businesses_create(state: CliState, slug: str, name: str, currency: str, language: str,
                      owner_email: str | None) -> None:
    """Create a business with its starting pipelines, lists and numbering rules."""
    from crmcore.tenancy.service import create_business

    business = create_business(state.crm, slug, name, currency=currency, language=language,
                               owner_email=owner_email)
    click.echo(f"created business {business.slug} ({business.name})")


@businesses.command("list")
@pass_state
@handle_errors
def businesses_list(state: CliState) -> None:
    from crmcore.tenancy.service import list_businesses

    for business in list_businesses(state.crm):
        click.echo(f"{business.slug}\t{business.name}\t{business.currency}")


@main.group()
def users() -> None:
    """Users and their roles."""


@users.command("create")
@click.argument("email")
@click.option("--business", "business_slug", required=True, help="Business slug")
@click.option("--role", type=click.Choice(["owner", "admin", "member", "read-only", "read_only"]),
              default="member", show_default=True)
@click.option("--name", default="")
@click.option("--password", help="Password (prompted when omitted; --generate-password prints one)")
@click.option("--generate-password", is_flag=True)
@pass_state
@handle_errors
def users_create(state: CliState, email: str, business_slug: str, role: str, name: str,
                 password: str | None, generate_password: bool) -> None:
    """Create a user (or reuse an existing one) and give it ROLE in the business."""
    from crmcore.auth.service import create_user, get_user
    from crmcore.errors import NotFound
    from crmcore.tenancy.service import add_member

    crm = state.crm
    ctx = crm.context(business_slug, system=True)
    try:
        try:
            user = get_user(crm, email)
            click.echo(f"user {user.email} exists")
        except NotFound:
            if generate_password:
                password = secrets.token_urlsafe(12)
            elif password is None:
                password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
            user = create_user(crm, email, password, name=name)
            click.echo(f"created user {user.email}")
            if generate_password:
                click.echo(f"password: {password}")
        add_member(ctx, user.email, role)
        click.echo(f"{user.email} is {role} of {business_slug}")
    finally:
        ctx.close()


# -- plugins ----------------------------------------------------------------------------------


@main.group()
def plugins() -> None:
    """Installed plugins and their enablement per business."""


@plugins.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output")
@pass_state
@handle_errors
def plugins_list(state: CliState, as_json: bool) -> None:
    """Installed plugins, version, the businesses that enabled them, and load errors."""
    from crmcore.plugins.overview import enablement_overview

    overview = enablement_overview(state.crm)
    if as_json:
        click.echo(json.dumps(overview, indent=2))
        return
    for row in overview["plugins"]:
        where = "all (essential)" if row["essential"] else (", ".join(row["enabled_in"]) or "-")
        click.echo(f"{row['name']}\t{row['version']}\t{row['source']}\tenabled in: {where}")
    for name, error in overview["errors"].items():
        click.echo(f"{name}\tFAILED\t{error}")


def _settings_pairs(pairs: tuple[str, ...]) -> dict[str, Any] | None:
    if not pairs:
        return None
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CrmError(f"--setting {pair!r}: use KEY=VALUE")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


@plugins.command("enable")
@click.argument("name")
@click.option("--business", "business_slug", required=True)
@click.option("--setting", "settings", multiple=True, help="KEY=VALUE (JSON values accepted); repeatable")
@pass_state
@handle_errors
def plugins_enable(state: CliState, name: str, business_slug: str, settings: tuple[str, ...]) -> None:
    """Enable plugin NAME for a business (its depends must be enabled first)."""
    from crmcore.plugins.service import enable_plugin

    with state.crm.context(business_slug, system=True) as ctx:
        enable_plugin(ctx, name, _settings_pairs(settings))
    click.echo(f"enabled {name} for {business_slug}")


@plugins.command("disable")
@click.argument("name")
@click.option("--business", "business_slug", required=True)
@pass_state
@handle_errors
def plugins_disable(state: CliState, name: str, business_slug: str) -> None:
    """Disable plugin NAME for a business (its data is kept)."""
    from crmcore.plugins.service import disable_plugin

    with state.crm.context(business_slug, system=True) as ctx:
        disable_plugin(ctx, name)
    click.echo(f"disabled {name} for {business_slug}")


@main.group()
def parties() -> None:
    """Parties: bulk import."""


@parties.command("import")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option("--business", "business_slug", required=True)
@click.option("--user", "user_email", help="Import as this user (an admin of the business); default: the system")
@click.option("--skip-duplicates", is_flag=True, help="Leave out rows whose email or reference exists (default: refuse)")
@click.option("--dry-run", is_flag=True, help="Check every row, write nothing")
@click.option("--delimiter", default=",", show_default=True, help="Cell separator of the file")
@pass_state
@handle_errors
def parties_import(state: CliState, csv_file: str, business_slug: str, user_email: str | None,
                   skip_duplicates: bool, dry_run: bool, delimiter: str) -> None:
    """Import parties from a CSV file with a header row (UTF-8; columns are listed in
    docs/import.md). All or nothing: every problem is listed by line and column, and a file
    with any refused row writes nothing."""
    import csv
    import io

    from crmcore.errors import ValidationFailed
    from crmcore.parties.bulk import import_parties

    if len(delimiter) != 1:
        raise click.BadParameter("give one character", param_hint="--delimiter")
    context = (state.crm.context(business_slug, user_email) if user_email
               else state.crm.context(business_slug, system=True))
    handle = (io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8-sig", newline="") if csv_file == "-"
              else open(csv_file, encoding="utf-8-sig", newline=""))  # noqa: SIM115 - closed below
    with handle, context as ctx:
        rows = csv.DictReader(handle, delimiter=delimiter)
        try:
            report = import_parties(ctx, rows, on_duplicate="skip" if skip_duplicates else "error",
                                    dry_run=dry_run)
        except (UnicodeDecodeError, csv.Error) as exc:
            click.echo(f"error: {csv_file} is not a UTF-8 CSV file ({exc}); nothing was imported", err=True)
            sys.exit(1)
        except ValidationFailed as exc:
            for line, problems in (exc.errors.get("rows") or {}).items():
                for column, messages in problems.items():
                    click.echo(f"line {line}, {column}: {'; '.join(messages)}", err=True)
            for column, messages in (exc.errors.get("columns") or {}).items():
                click.echo(f"column {column!r}: {messages[0]}", err=True)
            raise
    verb = "would import" if dry_run else "imported"
    click.echo(f"{verb} {_count(report.created, 'party', 'parties')} "
               f"({_count(report.contacts, 'contact', 'contacts')}) from {_count(report.rows, 'row', 'rows')}"
               + (f"; skipped {_count(report.skipped, 'duplicate', 'duplicates')}" if report.skipped else ""))


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


@plugins.command("check")
@pass_state
@handle_errors
def plugins_check(state: CliState) -> None:
    """Which installed plugins fit this core's hook contract. Exit 1 when one does not."""
    from crmcore import HOOK_API_VERSION
    from crmcore.plugins.overview import contract_report

    click.echo(f"crmcore hook API {HOOK_API_VERSION}")
    report = contract_report(state.crm.registry)
    failed = False
    for name, problems in report.items():
        if problems:
            failed = True
            click.echo(f"{name}: DOES NOT FIT: " + "; ".join(problems))
        else:
            click.echo(f"{name}: ok")
    if failed:
        sys.exit(1)


# -- demo ---------------------------------------------------------------------------------------


def _serve_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on")(fn)
    fn = click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))(fn)
    fn = click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64),
                      help="Worker processes")(fn)
    return fn


@main.command()
@_serve_options
@click.option("--threads", default=4, show_default=True, type=click.IntRange(1, 256),
              help="Requests each worker serves at once")
@click.option("--access-log/--no-access-log", default=True, show_default=True,
              help="One line per request on stdout")
@click.option("--with-worker", is_flag=True,
              help="Also run the outbox worker in a thread of each worker process (no `crm worker` needed)")
@pass_state
@handle_errors
def serve(state: CliState, host: str, port: int, workers: int, threads: int, access_log: bool,
          with_worker: bool) -> None:
    """Serve the admin and the API (gunicorn, pre-fork workers)."""
    from crmcore.web import create_app
    from crmcore.web.serve import serve as run_server

    app = create_app(state.config())
    extra = " with the outbox worker" if with_worker else ""
    click.echo(f"crmcore on http://{host}:{port}/ ({workers} workers x {threads} threads){extra}")
    if with_worker:
        from crmcore.outbox.worker import configure_logging

        configure_logging()
    run_server(app, host=host, port=port, workers=workers, threads=threads, access_log=access_log,
               with_worker=with_worker)


# -- the outbox worker --------------------------------------------------------------------------


@main.command()
@click.option("--batch", default=100, show_default=True, type=click.IntRange(1, 10_000),
              help="Rows claimed at a time")
@click.option("--poll", default=1.0, show_default=True, type=click.FloatRange(0.01, 3600),
              help="Seconds between looks at an empty queue")
@click.option("--concurrency", default=1, show_default=True, type=click.IntRange(1, 256),
              help="Jobs run at once (threads: for handlers that wait on the network)")
@click.option("--once", is_flag=True, help="Run what is due now, then exit (cron, scripts)")
@click.option("--import", "imports", multiple=True, metavar="MODULE",
              help="Import MODULE first (code that registers outbox handlers); repeatable")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]))
@pass_state
@handle_errors
def worker(state: CliState, batch: int, poll: float, concurrency: int, once: bool, imports: tuple[str, ...],
           log_level: str) -> None:
    """Run the outbox: side effects (plugins' react-hooks, email, SMS, ...) queued by committed
    changes, with retries, until stopped (SIGTERM or Ctrl-C finish the running jobs first).
    PostgreSQL: run as many as you like, on any machines. SQLite: one runs, others stand by."""
    import importlib
    import logging
    import signal

    from crmcore.outbox.worker import Worker

    logging.basicConfig(level=getattr(logging, log_level.upper()), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for module in imports:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise CrmError(f"--import {module}: {exc}") from exc
    runner = Worker(state.crm, batch=batch, poll=poll, concurrency=concurrency)
    stops = 0

    def _stop(signum: int, _frame: Any) -> None:
        nonlocal stops
        stops += 1
        if stops > 1 and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: leave now; leases bring the rows back
        logging.getLogger("crmcore.outbox.worker").info(
            "%s: stopping after the running jobs", signal.Signals(signum).name)
        runner.stop()

    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        totals = runner.run(once=once)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if once:
        click.echo(f"{totals.claimed} jobs: {totals.done} done, {totals.failed} failed, "
                   f"{totals.parked} parked, {totals.discarded} discarded")


@main.command()
@click.option("--seed-only", is_flag=True, help="Create the demo business and exit without serving")
@click.option("--parties", default=60, show_default=True, help="How many demo parties")
@_serve_options
@pass_state
@handle_errors
def demo(state: CliState, seed_only: bool, parties: int, host: str, port: int, workers: int) -> None:
    """Create (once) a demo business with realistic parties, deals in every stage, notes and
    fields, then serve the admin on it (with the outbox worker in-process)."""
    from crmcore.demo import seed_demo
    from crmcore.migrations.runner import upgrade

    config = state.config().ensure_instance()
    state.instance = str(config.instance_path)
    crm = state.crm
    upgrade(crm.db.engine, crm.registry)
    summary = seed_demo(crm, parties=parties)
    for line in summary:
        click.echo(line)
    if seed_only:
        return
    from crmcore.web import create_app
    from crmcore.web.serve import serve as run_server

    crm.db.dispose()
    app = create_app(config)
    click.echo(f"open http://{host}:{port}/ and log in as the demo user above")
    from crmcore.outbox.worker import configure_logging

    configure_logging()
    run_server(app, host=host, port=port, workers=workers, with_worker=True)


if __name__ == "__main__":  # python -m crmcore.cli
    main()
