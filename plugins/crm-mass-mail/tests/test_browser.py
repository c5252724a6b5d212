"""An admin writes, fixes, starts and follows a campaign in a real browser."""

from __future__ import annotations

from crm_mass_mail import service

from crmcore.parties.service import create_party
from crmcore.testing import TEST_PASSWORD


def test_an_admin_sends_a_campaign_from_the_pages(browse, mm):
    create_party(mm, {"kind": "organisation", "name": "Meadow Farms",
                      "mechanisms": [{"kind": "email", "value": "info@meadow.example"}]})
    browse(write_fix_start_and_follow)
    mm.session.rollback()
    (campaign,) = service.list_campaigns(mm).items
    assert campaign.name == "Spring news" and campaign.status == "done" and campaign.recipients_total == 1


def write_fix_start_and_follow(page):
    page.goto("/login")
    page.fill("#email", "owner@acme.example")
    page.fill("#password", TEST_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("header.topbar")
    page.click("text=Mass mail")
    page.wait_for_url("**/mass-mail/")
    page.click("text=New campaign")
    page.fill("#campaign-name", "Spring news")
    page.select_option("#campaign-template_key", "newsletter")
    page.fill("#campaign-throttle", "120")
    page.select_option("#campaign-f_kind", "organisation")
    page.fill("#campaign-audience", "{oops")
    page.click("text=Save campaign")
    assert "not JSON" in page.inner_text("#campaign-audience-err")
    assert page.input_value("#campaign-name") == "Spring news"  # what was typed is kept
    page.fill("#campaign-audience", "")
    page.click("text=Save campaign")
    page.wait_for_selector("#campaign-status")
    assert page.inner_text("#campaign-status") == "draft"
    page.on("dialog", lambda dialog: dialog.accept())
    page.click("button:has-text('Start sending')")
    page.wait_for_selector("#campaign-status:has-text('done')")
    page.click("text=All recipients")
    row = page.inner_text("table.recipients tbody")
    assert "Meadow Farms" in row and "info@meadow.example" in row and "queued" in row
