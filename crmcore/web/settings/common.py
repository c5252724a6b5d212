"""What every settings page shares: form reading, the try-save-or-show-again pattern, reorder
helpers and the sections of the settings menu."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from flask import flash, g, redirect, render_template, request, url_for

from crmcore.errors import Conflict, NotFound, ValidationFailed, Veto

#: (endpoint, label, what it is for) of the settings sections, in menu order
SECTIONS: tuple[tuple[str, str, str], ...] = (
    ("settings.business", "Business profile", "Legal name, address, tax id, logo and bank details shown on documents."),
    ("settings.plugins", "Plugins", "Turn features on and off for this business and enter their settings."),
    ("settings.pipelines", "Pipelines", "Pipelines and their stages for each kind of record."),
    ("settings.lists", "Lists", "Lost reasons, prospect statuses, potential levels and the other pick lists."),
    ("settings.fields", "Custom fields", "Extra fields on parties, contacts and records."),
    ("settings.numbering", "Numbering", "How reference codes are built."),
    ("settings.users", "Users and roles", "Who may use this business, and with which role."),
    ("settings.tokens", "API tokens", "Tokens that let other programs use the API."),
    ("outbox_admin.index", "Outbox", "Emails, messages and plugins' follow-ups waiting, failed or parked; retry or discard them."),
)

#: a page builder: ``(status, forms) -> response``; ``forms`` maps a form id to its state
PageBuilder = Callable[[int, dict[str, dict[str, Any]]], Any]


def text(name: str) -> str | None:
    """A text input: stripped, None when empty."""
    value = request.form.get(name, "").strip()
    return value or None


def checked(name: str) -> bool:
    """A checkbox (the macro sends a hidden empty value, then "1" when ticked)."""
    return "1" in request.form.getlist(name)


def whole_number(name: str) -> Any:
    """An integer input: None when empty, an int where it parses, else the text (for the schema
    to name the problem)."""
    value = text(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return value


def ids(name: str) -> list[int]:
    """A list of ids posted as repeated inputs; something that is no id is simply not found."""
    out = []
    for raw in request.form.getlist(name):
        try:
            out.append(int(raw))
        except ValueError as exc:
            raise NotFound(f"{name}: {raw!r} is not an id") from exc
    return out


def require_all_known(wanted: Sequence[int], known: Sequence[int], what: str) -> None:
    """Ids posted for a reorder must all belong to the list being reordered: anything else is
    "not found" (another business's id looks like a missing one)."""
    unknown = [i for i in wanted if i not in set(known)]
    if unknown:
        raise NotFound(f"{what} {unknown[0]} not found")


def moves(item_ids: Sequence[int]) -> dict[int, dict[str, list[int] | None]]:
    """For each id, the whole order after moving it one place up or down (None at an end):
    what the up/down buttons post."""
    order = list(item_ids)
    out: dict[int, dict[str, list[int] | None]] = {}
    for index, item in enumerate(order):
        up = down = None
        if index > 0:
            up = order[:index - 1] + [item, order[index - 1]] + order[index + 1:]
        if index < len(order) - 1:
            down = order[:index] + [order[index + 1], item] + order[index + 2:]
        out[item] = {"up": up, "down": down}
    return out


def typed(drop: Sequence[str] = ()) -> dict[str, list[str]]:
    """What was posted, to fill the form in again (every value of a name: checkboxes send two)."""
    return {k: v for k, v in request.form.to_dict(flat=False).items() if k != "csrf_token" and k not in drop}


def form_state(exc: Exception, *, drop: Sequence[str] = ()) -> dict[str, Any]:
    """The state a form is shown again with: the message, field errors, what was typed."""
    message = getattr(exc, "message", str(exc))
    errors = flat_errors(getattr(exc, "errors", {}) or {})
    return {"message": message, "errors": errors, "values": typed(drop)}


def value_of(state: dict[str, Any] | None, name: str, default: Any = "") -> Any:
    """For templates: the typed value of ``name`` when ``state`` is a form shown again, else
    ``default`` (the stored value). A checkbox reads "1" when it was ticked."""
    if state and "values" in state:
        posted = state["values"].get(name)
        if posted:
            return posted[-1]
        return "" if state["values"] else default
    return default


def flat_errors(errors: dict[str, Any], prefix: str = "") -> dict[str, list[str]]:
    """Nested marshmallow messages as ``{"a.b": ["..."]}``; list positions become "item N"."""
    out: dict[str, list[str]] = {}
    for key, value in errors.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            if all(isinstance(k, int) for k in value):
                out.setdefault(name, []).extend(_item_messages(value))
            else:
                out.update(flat_errors(value, f"{name}."))
        elif isinstance(value, list | tuple):
            out.setdefault(name, []).extend(str(v) for v in value)
        else:
            out.setdefault(name, []).append(str(value))
    return out


def _item_messages(items: dict[int, Any]) -> list[str]:
    messages = []
    for index, value in sorted(items.items()):
        for field_name, texts in flat_errors(value if isinstance(value, dict) else {"": value}).items():
            where = f"line {index + 1}" + (f" ({field_name})" if field_name else "")
            messages.extend(f"{where}: {t}" for t in texts)
    return messages


def attempt(action: Callable[[], Any], page: PageBuilder, form_id: str, *, done: str | None,
            then: str | Callable[[Any], str], drop: Sequence[str] = ()) -> Any:
    """Run a service call for a form: on success flash ``done`` and redirect to ``then`` (a URL,
    or a function of the call's result giving one);
    on invalid input show the page again with the errors beside the form's fields (422); on a
    refusal (Conflict, Veto) show the page with the reason beside the form (409). NotFound and
    PermissionDenied go to the app's error pages."""
    try:
        result = action()
    except ValidationFailed as exc:
        return page(422, {form_id: form_state(exc, drop=drop)})
    except (Conflict, Veto) as exc:
        return page(409, {form_id: form_state(exc, drop=drop)})
    if done:
        flash(done, "success")
    return redirect(then(result) if callable(then) else then)


def render(template: str, status: int = 200, **context: Any) -> Any:
    return render_template(template, settings_sections=SECTIONS, ctx=g.ctx, value_of=value_of, **context), status


def back(endpoint: str, anchor: str | None = None, **values: Any) -> str:
    url = url_for(endpoint, **values)
    return f"{url}#{anchor}" if anchor else url
