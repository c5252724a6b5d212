"""The public payment page: whatever is wrong with a link, the answer is the same 404; the token
is never stored in clear; paid and cancelled invoices say so; forms keep CSRF; output is escaped."""

from __future__ import annotations

import secrets

import pytest
from crm_invoicing import NAME, service, tokens
from sqlalchemy import inspect, text

from crmcore.plugins.service import disable_plugin

from .conftest import line  # noqa: TID252


@pytest.fixture
def issued(inv, party):
    record = service.create_invoice(inv, {"party_id": party.id, "lines": [line(description="<b>Bold</b> work")]})
    done = service.activate_invoice(inv, record.id)
    return record, done.token


def test_every_bad_link_is_the_same_404(inv, party, app, issued):
    record, token = issued
    client = app.test_client()
    good = client.get(f"/pay/acme/{token}")
    assert good.status_code == 200
    draft = service.create_invoice(inv, {"party_id": party.id, "lines": [line()]})
    assert draft.id
    wrong_same_prefix = token[:tokens.PREFIX] + secrets.token_urlsafe(24)[:tokens.TOKEN_LENGTH - tokens.PREFIX]
    bad = [
        f"/pay/acme/{secrets.token_urlsafe(24)}",  # well formed, unknown
        f"/pay/acme/{wrong_same_prefix}",          # the right prefix, the wrong rest
        f"/pay/acme/{token[:-1]}",                 # too short
        f"/pay/acme/{token}x",                     # too long
        f"/pay/globex/{token}",                    # another business
        f"/pay/nobody/{token}",                    # no business
        f"/pay/ACME!/{token}",                     # not a slug
    ]
    answers = {(r.status_code, r.get_data(as_text=True)) for r in (client.get(url) for url in bad)}
    assert len(answers) == 1
    (status, body), = answers
    assert status == 404 and "not valid" in body and "Initech" not in body
    nul = client.get(f"/pay/acme/{token[:-1]}%00")  # refused by the core before any query
    assert nul.status_code == 422 and "Initech" not in nul.get_data(as_text=True)
    disable_plugin(inv, NAME)
    off = client.get(f"/pay/acme/{token}")
    assert (off.status_code, off.get_data(as_text=True)) == (status, body)


def test_the_token_is_not_stored_in_clear_anywhere(inv, issued):
    record, token = issued
    found = []
    engine = inv.crm.db.engine
    with engine.connect() as conn:
        for table in inspect(engine).get_table_names():
            for column in inspect(engine).get_columns(table):
                kind = str(column["type"]).upper()
                if not any(t in kind for t in ("CHAR", "TEXT", "JSON")):
                    continue
                hits = conn.execute(text(f'select count(*) from "{table}" where cast("{column["name"]}" as text) '
                                         f"like :needle"), {"needle": f"%{token[tokens.PREFIX:]}%"}).scalar()
                if hits:
                    found.append(f"{table}.{column['name']}")
    assert found == []


def test_the_page_shows_the_invoice_escaped_and_paid_or_cancelled_ones_say_so(inv, party, app, issued):
    record, token = issued
    client = app.test_client()
    page = client.get(f"/pay/acme/{token}")
    body = page.get_data(as_text=True)
    assert "&lt;b&gt;Bold&lt;/b&gt; work" in body and "<b>Bold" not in body
    assert "Initech &lt;BV&gt;" in body and "Amsterdam" in body and "121.00" in body
    assert page.headers["Referrer-Policy"] == "no-referrer" and "no-store" in page.headers["Cache-Control"]
    service.record_payment(inv, record.id, {"amount": "121"})
    assert "This invoice is paid" in client.get(f"/pay/acme/{token}").get_data(as_text=True)
    other = service.create_invoice(inv, {"party_id": party.id, "lines": [line()]})
    other_token = service.activate_invoice(inv, other.id).token
    service.cancel_invoice(inv, other.id)
    assert "was cancelled" in client.get(f"/pay/acme/{other_token}").get_data(as_text=True)


def test_a_renewed_link_replaces_the_old_one(inv, app, issued):
    record, token = issued
    new = service.renew_payment_link(inv, record.id)
    client = app.test_client()
    assert client.get(f"/pay/acme/{token}").status_code == 404
    assert client.get(f"/pay/acme/{new}").status_code == 200


def test_paying_needs_the_csrf_token(inv, app, issued, gateway):
    from crm_invoicing.models import PaymentAttempt
    from sqlalchemy import func, select

    _record, token = issued
    client = app.test_client()
    response = client.post(f"/pay/acme/{token}/testpay", data={"amount": "1"})
    assert response.status_code == 400
    inv.session.rollback()
    assert inv.session.scalar(select(func.count()).select_from(PaymentAttempt)) == 0
    assert gateway.received == []


def test_the_manual_gateway_shows_its_instructions(inv, app, issued):
    from crmcore.plugins.service import enable_plugin

    enable_plugin(inv, "payments-manual", {"account_holder": "Acme <Equipment> BV",
                                           "iban": "NL91 ABNA 0417 1643 00", "bic": "ABNANL2A"})
    record, token = issued
    body = app.test_client().get(f"/pay/acme/{token}").get_data(as_text=True)
    assert "NL91 ABNA 0417 1643 00" in body and "Acme &lt;Equipment&gt; BV" in body
    inv.session.rollback()
    reference = service.get_invoice(inv, record.id).record.reference
    assert f"Please mention <strong>{reference}</strong>" in body
    assert "Pay with" not in body  # an offline gateway has no button
