"""One campaign all the way: `crm worker`'s loop (``Worker.run(once=True)``) runs the batch job,
the core queues the emails, the real ``crm-email-smtp`` transport hands them to an aiosmtpd
server on 127.0.0.1; the opted-out party gets nothing; every email carries the unsubscribe link
(in the body and as List-Unsubscribe headers)."""

from __future__ import annotations

import dataclasses

import pytest
from crm_mass_mail import service
from sqlalchemy import text

from crmcore.messaging import service as messaging
from crmcore.outbox.worker import Worker
from crmcore.parties.service import create_party
from crmcore.plugins.service import enable_plugin


@pytest.fixture
def crm_config(crm_config):
    """Jobs wait for the worker, as in production."""
    return dataclasses.replace(crm_config, outbox_inline=False)


def test_a_campaign_reaches_a_real_smtp_server(mm, smtp_server):
    enable_plugin(mm, "email-smtp", {"host": smtp_server.host, "port": smtp_server.port, "security": "none",
                                     "from_address": "news@acme.example", "from_name": "Acme News", "timeout": 5})
    for name, email in (("Meadow Farms", "info@meadow.example"), ("Hill Dairy", "hello@hill.example"),
                        ("Gone Ltd", "gone@gone.example")):
        create_party(mm, {"kind": "organisation", "name": name, "mechanisms": [{"kind": "email", "value": email}]})
    messaging.opt_out(mm, "email", "gone@gone.example")
    campaign = service.create_campaign(mm, {"name": "Spring news", "template_key": "newsletter", "throttle": 600})
    service.start_campaign(mm, campaign.id)
    assert smtp_server.messages == []  # nothing leaves before the worker runs
    totals = Worker(mm.crm, prune=False).run(once=True)
    assert totals.claimed >= 3  # the batch job, then the two email jobs it queued
    assert sorted(e.rcpt_tos[0] for e in smtp_server.envelopes) == ["hello@hill.example", "info@meadow.example"]
    for arrived in smtp_server.messages:
        assert arrived["From"] == "Acme News <news@acme.example>"
        assert arrived["Subject"].startswith("News for ")
        link = arrived["List-Unsubscribe"].strip("<>")
        assert link.startswith("https://crm.example.test/unsubscribe/")
        assert arrived["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert link in arrived.get_body(("plain",)).get_content()
        assert "Spring news" in arrived.get_body(("plain",)).get_content()
    mm.session.rollback()
    counts = service.recipient_counts(mm, campaign.id)
    assert (counts["sent"].value, counts["suppressed"].value, counts["queued"].value) == (2, 1, 0)
    assert service.get_campaign(mm, campaign.id).status == "done"
    with mm.crm.db.engine.connect() as conn:
        statuses = dict(conn.execute(text("select kind, count(*) from outbox where status = 'done' group by kind")).all())
    assert statuses == {"mass_mail.batch": 1, "email": 2}
