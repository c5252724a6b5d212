"""Form data of the party and contact pages -> service input, and back.

Each parser returns two dicts: what the service gets (empty text -> None, checkboxes -> bool,
lists split) and what the form shows again when the service refuses it (exactly what was
typed). Rows of mechanisms and addresses that were left empty are not sent; the service's
error paths are mapped back to the form rows they came from.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from werkzeug.datastructures import MultiDict

from crmcore.parties.models import ADDRESS_PURPOSES, MECHANISM_KINDS

#: the mechanism rows a new party's form offers, by kind
NEW_MECHANISM_KINDS = ("email", "phone", "website")
#: the mechanism rows a new contact's form offers
NEW_CONTACT_MECHANISM_KINDS = ("email", "phone", "mobile")
ADDRESS_FIELDS = ("purpose", "label", "line1", "line2", "postal_code", "city", "region", "country")
PARTY_TEXT = ("name", "first_name", "last_name", "language", "currency", "tax_id")
PARTY_FLAGS = ("is_prospect", "is_customer", "is_supplier")
CONTACT_TEXT = ("first_name", "last_name", "job_title", "department", "language", "notes")
#: how many rows of a kind a form may post (more are ignored)
MAX_ROWS = 20


def text(form: Mapping[str, Any], name: str) -> str | None:
    """The stripped value of a text control; empty -> None."""
    value = form.get(name)
    if value is None:
        return None
    value = str(value).strip()
    return value or None


def checked(form: MultiDict, name: str) -> bool:
    """A ``macros.checkbox`` posts a hidden "" and, when ticked, "1"."""
    return "1" in form.getlist(name)


def tristate(value: str | None) -> bool | None:
    """A yes/no/any filter control."""
    return {"yes": True, "no": False}.get(value or "")


def tag_list(value: str | None) -> list[str]:
    """Comma-separated tags, blanks dropped."""
    return [t.strip() for t in (value or "").split(",") if t.strip()]


def chosen(form: MultiDict, name: str) -> list[str]:
    return [v for v in form.getlist(name) if v.strip()]


# --------------------------------------------------------------------------------------------
# custom fields


def custom_input(form: MultiDict, definitions: Iterable[Any], *, prefix: str = "custom.",
                 skip_empty: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    """``custom.<key>`` controls -> (values for the service, values to show again).

    A checkbox posts a hidden "0" before the box, a multiple choice a hidden "" (so clearing
    it is posted too): the last value, resp. the non-empty ones, count."""
    values: dict[str, Any] = {}
    shown: dict[str, Any] = {}
    for definition in definitions:
        name = prefix + definition.key
        if name not in form:
            continue
        posted = form.getlist(name)
        if definition.type == "multi_choice":
            raw: Any = [v for v in posted if v.strip()]
            shown[definition.key] = raw
            raw = raw or None
        elif definition.type == "checkbox":
            raw = posted[-1]
            shown[definition.key] = raw == "1"
        else:
            raw = posted[-1].strip() or None
            shown[definition.key] = posted[-1]
        if raw is None and skip_empty:
            continue
        values[definition.key] = raw
    return values, shown


# --------------------------------------------------------------------------------------------
# rows: mechanisms and addresses


def _row_indices(form: MultiDict, prefix: str) -> list[int]:
    found = set()
    for key in form:
        if key.startswith(prefix + "."):
            part = key[len(prefix) + 1:].split(".", 1)[0]
            if part.isdigit() and int(part) < MAX_ROWS:
                found.add(int(part))
    return sorted(found)


def mechanism_rows(form: MultiDict, prefix: str = "mechanisms") -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[int]]:
    """(rows for the service, rows to show again, form row index of each service row)."""
    send, shown, origin = [], [], []
    for i in _row_indices(form, prefix):
        row = {"kind": form.get(f"{prefix}.{i}.kind", ""), "value": form.get(f"{prefix}.{i}.value", "")}
        shown.append(row)
        if row["value"].strip():
            send.append({"kind": row["kind"], "value": row["value"].strip()})
            origin.append(len(shown) - 1)
    return send, shown, origin


def address_rows(form: MultiDict, prefix: str = "addresses") -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[int]]:
    """Address blocks; a block with nothing but its purpose is not sent."""
    send, shown, origin = [], [], []
    for i in _row_indices(form, prefix):
        row = {f: form.get(f"{prefix}.{i}.{f}", "") for f in ADDRESS_FIELDS}
        shown.append(row)
        filled = {f: v.strip() for f, v in row.items() if v.strip()}
        if set(filled) - {"purpose"}:
            send.append(filled)
            origin.append(len(shown) - 1)
    return send, shown, origin


def blank_mechanisms(kinds: Iterable[str]) -> list[dict[str, str]]:
    return [{"kind": k, "value": ""} for k in kinds]


def blank_address(purpose: str = "billing") -> dict[str, str]:
    return {f: (purpose if f == "purpose" else "") for f in ADDRESS_FIELDS}


# --------------------------------------------------------------------------------------------
# whole forms


def party_input(form: MultiDict, definitions: Iterable[Any], *, creating: bool) -> tuple[dict[str, Any], dict[str, Any], dict[str, list[int]]]:
    """The party form -> (service data, values to show again, row origins).

    A person's name comes from first and last name, an organisation's from ``name``: the
    other ones are not sent. Creating sends no empty value, so plugin defaults
    (``crm_party_defaults``) and the first prospect status fill them."""
    kind = form.get("kind") or "organisation"
    shown: dict[str, Any] = {key: form.get(key, "") for key in PARTY_TEXT}
    shown.update({"kind": kind, "prospect_status": form.get("prospect_status", ""),
                  "potential": form.get("potential", ""), "tags": form.get("tags", ""),
                  "sales_rep_ids": chosen(form, "sales_rep_ids")})
    data: dict[str, Any] = {"kind": kind}
    for key in PARTY_TEXT:
        data[key] = text(form, key)
    for key in PARTY_FLAGS:
        shown[key] = data[key] = checked(form, key)
    if kind == "person":
        data.pop("name")
    else:
        data.pop("first_name")
        data.pop("last_name")
    data["prospect_status"] = text(form, "prospect_status")
    data["potential"] = text(form, "potential")
    data["tags"] = tag_list(form.get("tags"))
    data["sales_rep_ids"] = shown["sales_rep_ids"]
    custom, shown["custom"] = custom_input(form, definitions, skip_empty=creating)
    data["custom"] = custom
    origins: dict[str, list[int]] = {}
    if creating:
        data = {k: v for k, v in data.items() if v is not None and v != [] and v != {}}
        data["mechanisms"], shown["mechanisms"], origins["mechanisms"] = mechanism_rows(form)
        data["addresses"], shown["addresses"], origins["addresses"] = address_rows(form)
    return data, shown, origins


def party_shown(details: Mapping[str, Any]) -> dict[str, Any]:
    """The edit form's values from ``party_details``."""
    party = details["party"]
    shown: dict[str, Any] = {key: getattr(party, key) or "" for key in PARTY_TEXT}
    shown.update({key: getattr(party, key) for key in PARTY_FLAGS})
    shown.update({
        "kind": party.kind,
        "prospect_status": details["prospect_status"].value if details["prospect_status"] else "",
        "potential": details["potential"].value if details["potential"] else "",
        "tags": ", ".join(t.name for t in details["tags"]),
        "sales_rep_ids": [str(u.id) for u in details["sales_reps"]],
        "custom": dict(party.custom or {}),
    })
    return shown


def contact_input(form: MultiDict, definitions: Iterable[Any], *, creating: bool) -> tuple[dict[str, Any], dict[str, Any], dict[str, list[int]]]:
    """The contact form -> (service data, values to show again, row origins)."""
    shown: dict[str, Any] = {key: form.get(key, "") for key in CONTACT_TEXT}
    data: dict[str, Any] = {key: text(form, key) for key in CONTACT_TEXT}
    custom, shown["custom"] = custom_input(form, definitions, skip_empty=creating)
    data["custom"] = custom
    origins: dict[str, list[int]] = {}
    if creating:
        shown["party_id"] = form.get("party_id", "")
        data["party_id"] = text(form, "party_id")
        data["mechanisms"], shown["mechanisms"], origins["mechanisms"] = mechanism_rows(form)
        data = {k: v for k, v in data.items() if v is not None and v != {}}
    return data, shown, origins


def contact_shown(contact: Any) -> dict[str, Any]:
    shown = {key: getattr(contact, key) or "" for key in CONTACT_TEXT}
    shown["custom"] = dict(contact.custom or {})
    return shown


def mechanism_input(form: MultiDict) -> dict[str, Any]:
    """One mechanism added on a sheet."""
    data: dict[str, Any] = {"kind": form.get("kind", ""), "value": form.get("value", "")}
    if text(form, "label"):
        data["label"] = text(form, "label")
    if checked(form, "is_primary"):
        data["is_primary"] = True
    return data


def address_input(form: MultiDict) -> dict[str, Any]:
    """One address added on a sheet (empty parts left out)."""
    data: dict[str, Any] = {f: text(form, f) for f in ADDRESS_FIELDS if text(form, f)}
    data.setdefault("line1", "")
    if checked(form, "is_default"):
        data["is_default"] = True
    return data


# --------------------------------------------------------------------------------------------
# errors


def flat_errors(errors: Mapping[Any, Any] | None, origins: Mapping[str, list[int]] | None = None) -> dict[str, list[str]]:
    """The service's nested field errors as ``{"a.0.b": [messages]}``, the form's control
    names; rows are renumbered to the form rows they came from, and errors of one list item
    (``tags.3``) are shown beside the list's control."""
    out: dict[str, list[str]] = {}
    origins = origins or {}

    def walk(node: Any, path: list[str]) -> None:
        if isinstance(node, Mapping):
            for key, value in node.items():
                walk(value, [*path, str(key)])
            return
        messages = node if isinstance(node, list | tuple) else [node]
        if any(isinstance(m, Mapping | list | tuple) for m in messages):
            for i, item in enumerate(messages):
                walk(item, [*path, str(i)])
            return
        out.setdefault(_form_name(path, origins), []).extend(str(m) for m in messages)

    walk(errors or {}, [])
    return out


def _form_name(path: list[str], origins: Mapping[str, list[int]]) -> str:
    if not path:
        return "_schema"
    head = path[0]
    if head in ("tags", "sales_rep_ids"):
        return head
    if head in origins and len(path) > 1 and path[1].isdigit():
        rows = origins[head]
        index = int(path[1])
        path = [head, str(rows[index] if index < len(rows) else index), *path[2:]]
    return ".".join(path)


def choices(values: Iterable[str]) -> list[tuple[str, str]]:
    return [(v, v.replace("_", " ").capitalize()) for v in values]


MECHANISM_CHOICES = choices(MECHANISM_KINDS)
PURPOSE_CHOICES = choices(ADDRESS_PURPOSES)
