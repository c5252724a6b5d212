"""The outbox page and API: the business's jobs by status, retry and discard (admins only,
CSRF-checked, audited, isolated per business), in the test client and in a real browser."""

from __future__ import annotations

import dataclasses
import re

import pytest
from sqlalchemy import select, update

from crmcore.audit.models import AuditEntry
from crmcore.auth.service import create_api_token
from crmcore.context import use_case
from crmcore.db import utcnow
from crmcore.outbox.models import OutboxMessage
from crmcore.outbox.service import enqueue, register_handler, unregister_handler
from crmcore.tenancy.models import Role
from crmcore.testing import TEST_PASSWORD, CrmClient

XSS = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


@use_case(Role.MEMBER)
def queue(ctx, kind, n=1, topic="invoice.paid"):
    return [enqueue(ctx, kind, topic, {"n": i}, idempotency_key=f"{kind}-{ctx.new_key()}") for i in range(n)]


def set_state(crm, job_id, **values):
    with crm.db.transaction(unscoped=True) as session:
        session.execute(update(OutboxMessage).where(OutboxMessage.id == job_id).values(**values))


def job(crm, job_id):
    with crm.db.session(unscoped=True) as session:
        return session.get(OutboxMessage, job_id)


def body(response):
    return response.get_data(as_text=True)


@pytest.fixture
def jobs(crm, ctx):
    """Jobs of acme in every state (nothing runs them: no worker, no inline runs)."""
    crm.config = dataclasses.replace(crm.config, outbox_inline=False)
    ids = dict(zip(["queued", "running", "failed", "parked", "done", "discarded"], queue(ctx, "t-mail", 6),
                   strict=True))
    set_state(crm, ids["running"], status="running", attempts=1, locked_until=utcnow())
    set_state(crm, ids["failed"], status="failed", attempts=2, last_error="SMTP 451: try later",
              last_duration_ms=12.5)
    set_state(crm, ids["parked"], status="parked", attempts=8, max_attempts=8,
              last_error=f"provider said {XSS} " + "x" * 400)
    set_state(crm, ids["done"], status="done", attempts=1, done_at=utcnow(), last_duration_ms=3.0)
    set_state(crm, ids["discarded"], status="discarded", done_at=utcnow())
    return ids


@pytest.fixture
def client_as(app, business, make_user):
    def make(role):
        member = make_user(business, role)
        c = CrmClient(app.test_client())
        assert c.login(member.user.email, TEST_PASSWORD).status_code == 302
        return c

    return make


# -- the page ----------------------------------------------------------------------------------------


def test_page_opens_on_what_needs_attention_with_counts_per_status(client, jobs):
    page = body(client.get("/settings/outbox/"))
    assert 'aria-current="page" id="tab-parked"' in page
    for view in ("queued", "running", "failed", "parked", "done", "discarded"):
        assert re.search(rf'id="tab-{view}">[^<]+<span class="badge">1</span>', page), view
    assert f'id="job-{jobs["parked"]}"' in page and f'id="job-{jobs["failed"]}"' not in page
    assert "8 / 8" in page
    assert 'href="/settings/outbox/"' in body(client.get("/settings/"))  # in the settings menu


def test_error_text_is_escaped_and_cut_short(client, jobs):
    page = body(client.get("/settings/outbox/?view=parked"))
    assert XSS not in page and ESCAPED in page
    row = page[page.index(f'id="job-{jobs["parked"]}"'):]
    row = row[:row.index("</tr>")]
    summary = re.search(r"<summary>(.*?)</summary>", row, re.S).group(1)
    assert summary.endswith("…") and len(summary) < 200
    assert "x" * 400 in row  # the whole text, inside <details>


@pytest.mark.parametrize("view, shown, buttons", [
    ("queued", "queued", ["discard"]),
    ("running", "running", []),
    ("failed", "failed", ["retry", "discard"]),
    ("done", "done", []),
    ("discarded", "discarded", []),
])
def test_each_view_lists_its_jobs_with_the_actions_they_allow(client, jobs, view, shown, buttons):
    page = body(client.get(f"/settings/outbox/?view={view}"))
    job_id = jobs[shown]
    assert f'id="job-{job_id}"' in page
    for action in ("retry", "discard"):
        assert (f"/settings/outbox/{job_id}/{action}" in page) == (action in buttons), action
    assert sum(f'id="job-{i}"' in page for i in jobs.values()) == 1


def test_retry_queues_a_parked_job_now_with_fresh_attempts_and_audits(client, crm, ctx, jobs):
    parked = jobs["parked"]
    response = client.post(f"/settings/outbox/{parked}/retry?view=parked")
    assert response.status_code == 302 and response.headers["Location"].endswith("/settings/outbox/?view=parked")
    row = job(crm, parked)
    assert (row.status, row.attempts, row.max_attempts) == ("pending", 8, 16)
    assert row.next_attempt_at <= utcnow()
    assert "queued to run again" in body(client.get("/settings/outbox/?view=queued"))
    entry = ctx.session.scalars(select(AuditEntry).where(AuditEntry.action == "outbox.retried")).one()
    assert (entry.entity_type, entry.entity_id, entry.user_id) == ("outbox", parked, ctx.user_id)
    assert entry.changes["status"] == ["parked", "pending"]


def test_retry_runs_at_once_where_jobs_run_inline(client, crm, jobs):
    runs = []
    register_handler("t-mail", lambda crm, message: runs.append(message.id))
    try:
        crm.config = dataclasses.replace(crm.config, outbox_inline=True)
        client.post(f"/settings/outbox/{jobs['failed']}/retry")
    finally:
        unregister_handler("t-mail")
    assert runs == [jobs["failed"]] and job(crm, jobs["failed"]).status == "done"


def test_discard_and_its_audit(client, crm, ctx, jobs):
    for name in ("queued", "failed", "parked"):
        response = client.post(f"/settings/outbox/{jobs[name]}/discard")
        assert response.status_code == 302
        row = job(crm, jobs[name])
        assert row.status == "discarded" and row.done_at is not None
    actions = ctx.session.scalars(select(AuditEntry.entity_id).where(AuditEntry.action == "outbox.discarded")).all()
    assert sorted(actions) == sorted(jobs[n] for n in ("queued", "failed", "parked"))


@pytest.mark.parametrize("name, action", [("running", "retry"), ("running", "discard"), ("done", "retry"),
                                          ("done", "discard"), ("discarded", "discard"), ("queued", "retry")])
def test_actions_a_status_does_not_allow_are_refused_beside_the_job(client, crm, jobs, name, action):
    before = job(crm, jobs[name])
    response = client.post(f"/settings/outbox/{jobs[name]}/{action}?view={name}")
    assert response.status_code == 409
    assert f"job {jobs[name]} is" in body(response) and "jobs can be" in body(response)
    after = job(crm, jobs[name])
    assert (after.status, after.attempts, after.updated_at) == (before.status, before.attempts, before.updated_at)


def test_forms_need_the_csrf_token(client, crm, jobs):
    response = client.raw.post(f"/settings/outbox/{jobs['parked']}/retry", data={})
    assert response.status_code == 400
    assert job(crm, jobs["parked"]).status == "parked"


def test_another_business_jobs_are_not_found_and_not_listed(client, crm, other_ctx, jobs):
    [theirs] = queue(other_ctx, "t-mail")
    set_state(crm, theirs, status="parked", last_error="globex only")
    assert "globex only" not in body(client.get("/settings/outbox/?view=parked"))
    for action in ("retry", "discard"):
        assert client.post(f"/settings/outbox/{theirs}/{action}").status_code == 404
    assert job(crm, theirs).status == "parked"
    assert client.post("/settings/outbox/999999/retry").status_code == 404
    assert client.post(f"/settings/outbox/{2**70}/discard").status_code == 404  # no 64-bit id: not a 500


@pytest.mark.parametrize("role", ["member", "read_only"])
def test_members_and_read_only_users_get_403(client_as, jobs, role):
    c = client_as(role)
    assert c.get("/settings/outbox/").status_code == 403
    assert c.post(f"/settings/outbox/{jobs['parked']}/retry").status_code == 403
    assert c.post(f"/settings/outbox/{jobs['parked']}/discard").status_code == 403


def test_admins_may(client_as, crm, jobs):
    c = client_as("admin")
    assert c.get("/settings/outbox/?view=failed").status_code == 200
    assert c.post(f"/settings/outbox/{jobs['failed']}/discard").status_code == 302


def test_pages_by_keyset_and_refuses_bad_input(client, crm, ctx):
    crm.config = dataclasses.replace(crm.config, outbox_inline=False)
    ids = queue(ctx, "t-sms", 7)
    first = body(client.get("/settings/outbox/?view=queued&limit=3"))
    shown = [int(i) for i in re.findall(r'id="job-(\d+)"', first)]
    assert shown == sorted(ids, reverse=True)[:3]
    cursor = re.search(r'rel="next" href="[^"]*cursor=([^"&]+)', first).group(1)
    second = body(client.get(f"/settings/outbox/?view=queued&limit=3&cursor={cursor}"))
    assert [int(i) for i in re.findall(r'id="job-(\d+)"', second)] == sorted(ids, reverse=True)[3:6]
    assert client.get("/settings/outbox/?view=queued&cursor=nonsense").status_code == 422
    assert client.get("/settings/outbox/?view=everything").status_code == 422
    assert client.get("/settings/outbox/?limit=0").status_code == 422
    assert client.get("/settings/outbox/?limit=abc").status_code == 422


# -- the API --------------------------------------------------------------------------------------


@pytest.fixture
def api(app, ctx):
    headers = {"Authorization": f"Bearer {create_api_token(ctx, 'tests')[1]}"}
    client = app.test_client()

    class Api:
        def get(self, url, **kw):
            return client.get(f"/api/v1{url}", headers=headers, **kw)

        def post(self, url, **kw):
            return client.post(f"/api/v1{url}", headers=headers, **kw)

    return Api()


def test_api_lists_jobs_by_view_with_counts(api, jobs):
    response = api.get("/outbox?view=parked")
    assert response.status_code == 200, response.get_data(as_text=True)
    data = response.get_json()
    [item] = data["items"]
    assert item["id"] == jobs["parked"] and item["status"] == "parked" and XSS in item["last_error"]
    assert "payload" not in item
    assert data["total"] == {"count": 1, "capped": False}
    assert set(data["counts"]) == {"queued", "running", "failed", "parked", "done", "discarded"}
    assert api.get("/outbox").get_json()["items"][0]["id"] == jobs["queued"]
    assert api.get(f"/outbox/{jobs['failed']}").get_json()["last_error"] == "SMTP 451: try later"


def test_api_retry_discard_and_refusals(api, crm, jobs):
    response = api.post(f"/outbox/{jobs['parked']}/retry")
    assert response.status_code == 200 and response.get_json()["status"] == "pending"
    response = api.post(f"/outbox/{jobs['failed']}/discard", json={})
    assert response.status_code == 200 and response.get_json()["status"] == "discarded"
    refused = api.post(f"/outbox/{jobs['running']}/retry")
    assert refused.status_code == 409 and refused.mimetype == "application/problem+json"
    assert api.get("/outbox?view=nope").status_code == 422
    assert api.get("/outbox/999999").status_code == 404


def test_api_is_for_admins_and_isolated(app, crm, business, make_user, other_ctx, jobs):
    member = make_user(business, "member")
    token = create_api_token(member, "m")[1]
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/outbox", headers=headers).status_code == 403
    assert client.post(f"/api/v1/outbox/{jobs['parked']}/retry", headers=headers).status_code == 403
    other = {"Authorization": f"Bearer {create_api_token(other_ctx, 'o')[1]}"}
    assert client.get(f"/api/v1/outbox/{jobs['parked']}", headers=other).status_code == 404
    assert client.post(f"/api/v1/outbox/{jobs['parked']}/discard", headers=other).status_code == 404
    assert client.get("/api/v1/outbox?view=parked", headers=other).get_json()["items"] == []


# -- in the browser ---------------------------------------------------------------------------------


def test_an_admin_retries_and_discards_in_the_browser(page, crm, jobs):
    page.goto("/login")
    page.fill("#email", "owner@acme.example")
    page.fill("#password", TEST_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("header.topbar")
    page.goto("/settings/")
    page.click(".settings-nav >> text=Outbox")
    page.wait_for_selector(f"#job-{jobs['parked']}")
    assert page.get_attribute("#tab-parked", "aria-current") == "page"
    assert "provider said <script>" in page.inner_text(f"#job-{jobs['parked']} summary")
    page.click(f"#job-{jobs['parked']} button:has-text('Retry')")
    page.wait_for_selector(".flash-success")
    assert f"Job {jobs['parked']} queued to run again." in page.inner_text(".flash-success")
    assert job(crm, jobs["parked"]).status == "pending"

    page.click("#tab-failed")
    page.wait_for_selector(f"#job-{jobs['failed']}")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click(f"#job-{jobs['failed']} button:has-text('Discard')")
    page.wait_for_selector(".flash-success")
    assert "discarded" in page.inner_text(".flash-success")
    assert job(crm, jobs["failed"]).status == "discarded"
    assert page.query_selector(f"#job-{jobs['failed']}") is None
