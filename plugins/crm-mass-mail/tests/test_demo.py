"""The demo's campaign (hook ``crm_seed_demo``): a newsletter template that passes the plugin's
checks and a draft campaign to the parties tagged "newsletter", not started."""

from __future__ import annotations

from crm_mass_mail import NAME, service
from crm_mass_mail.plugin import crm_seed_demo

from crmcore.messaging.service import list_templates
from crmcore.parties.service import create_party
from crmcore.plugins.service import enable_plugin


def test_seed_demo_makes_a_draft_campaign_to_the_newsletter_tag(ctx):
    enable_plugin(ctx, NAME)
    for name, tags in (("Oakdale Farms", ["newsletter"]), ("Riverford Rentals", ["newsletter", "key account"]),
                       ("Stonebridge Construction", [])):
        create_party(ctx, {"kind": "organisation", "name": name, "tags": tags,
                           "mechanisms": [{"kind": "email", "value": f"info@{name.split()[0].lower()}.example"}]})
    assert crm_seed_demo(ctx) == ["draft campaign 'Spring service days' to the parties tagged newsletter"]
    (campaign,) = service.list_campaigns(ctx).items
    assert (campaign.status, campaign.template_key, campaign.audience) == ("draft", "newsletter", {"tag": "newsletter"})
    assert service.audience_size(ctx, campaign.id).value == 2
    template = next(t for t in list_templates(ctx) if t.key == "newsletter")
    assert "{{ unsubscribe_url }}" in template.body_text and "{{ unsubscribe_url }}" in template.body_html
    assert service.list_recipients(ctx, campaign.id).items == []  # nothing sent
