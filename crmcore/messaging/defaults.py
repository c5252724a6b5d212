"""The default templates a business starts from (one per core event, and a plain message).

Seeded by ``service.seed_default_templates`` (the templates page's button, ``crm demo``); every
one is checked against its event's sample like an admin's template, so a broken default fails
the tests, not a customer's email.
"""

from __future__ import annotations

from typing import Any

_FOOTER_TEXT = """
--
{{ business.name }}{% if unsubscribe_url %}
To stop receiving these emails: {{ unsubscribe_url }}{% endif %}
"""

_FOOTER_HTML = """
<hr>
<p style="color:#666;font-size:12px">{{ business.name }}{% if unsubscribe_url %} ·
<a href="{{ unsubscribe_url }}">Unsubscribe</a>{% endif %}</p>"""

DEFAULT_TEMPLATES: tuple[dict[str, Any], ...] = (
    {
        "key": "party.created",
        "name": "Welcome a new client",
        "subject": "Welcome to {{ business.name }}",
        "body_text": "Hello {{ recipient.name or party.name }},\n\nthank you for your interest in "
                     "{{ business.name }}. We will be in touch shortly.\n" + _FOOTER_TEXT,
        "body_html": "<p>Hello {{ recipient.name or party.name }},</p>\n<p>thank you for your interest in "
                     "{{ business.name }}. We will be in touch shortly.</p>" + _FOOTER_HTML,
        "sms_text": "{{ business.name }}: welcome, {{ recipient.name or party.name }}! We will be in touch shortly.",
    },
    {
        "key": "deal.stage_changed",
        "name": "Deal moved (for the team)",
        "subject": "{{ record.title }}: {{ from_stage.name if from_stage else 'new' }} → {{ to_stage.name }}",
        "body_text": "{{ record.title }}{% if party %} ({{ party.name }}){% endif %} moved to "
                     "{{ to_stage.name }}{% if user %} by {{ user.name }}{% endif %}.\n"
                     "{% if record.amount %}Amount: {{ record.amount | money(record.currency) }}\n{% endif %}",
        "body_html": "<p><strong>{{ record.title }}</strong>{% if party %} ({{ party.name }}){% endif %} moved to "
                     "<strong>{{ to_stage.name }}</strong>{% if user %} by {{ user.name }}{% endif %}.</p>\n"
                     "{% if record.amount %}<p>Amount: {{ record.amount | money(record.currency) }}</p>{% endif %}",
        "sms_text": "{{ record.title }} moved to {{ to_stage.name }}.",
    },
    {
        "key": "deal.won",
        "name": "Thank the client for the order",
        "subject": "Thank you for your order: {{ record.title }}",
        "body_text": "Hello {{ recipient.name or (party.name if party else '') }},\n\nthank you for choosing "
                     "{{ business.name }}.{% if record.owner %} {{ record.owner.name }} will contact you about "
                     "the next steps.{% endif %}\n" + _FOOTER_TEXT,
        "body_html": "<p>Hello {{ recipient.name or (party.name if party else '') }},</p>\n<p>thank you for "
                     "choosing {{ business.name }}.{% if record.owner %} {{ record.owner.name }} will contact you "
                     "about the next steps.{% endif %}</p>" + _FOOTER_HTML,
        "sms_text": "{{ business.name }}: thank you for your order ({{ record.title }})!",
    },
    {
        "key": "deal.lost",
        "name": "Deal lost (for the team)",
        "subject": "Lost: {{ record.title }}{% if lost_reason %} ({{ lost_reason }}){% endif %}",
        "body_text": "{{ record.title }}{% if party %} ({{ party.name }}){% endif %} was closed as lost"
                     "{% if lost_reason %}: {{ lost_reason }}{% endif %}.\n",
        "body_html": "<p><strong>{{ record.title }}</strong>{% if party %} ({{ party.name }}){% endif %} was closed "
                     "as lost{% if lost_reason %}: {{ lost_reason }}{% endif %}.</p>",
        "sms_text": "Lost: {{ record.title }}{% if lost_reason %} ({{ lost_reason }}){% endif %}",
    },
    {
        "key": "message",
        "name": "A plain message",
        "subject": "A message from {{ business.name }}",
        "body_text": "Hello {{ recipient.name or 'there' }},\n\n{{ message }}\n" + _FOOTER_TEXT,
        "body_html": "<p>Hello {{ recipient.name or 'there' }},</p>\n<p>{{ message }}</p>" + _FOOTER_HTML,
        "sms_text": "{{ business.name }}: {{ message }}",
    },
)
