"""Business documents: render a quote, invoice, credit note or order to PDF and keep it on its
record's timeline, with the business profile (legal name, address, tax id, logo, bank details)
the documents show. The public API for plugins; see docs/documents.md.
"""

from __future__ import annotations

from crmcore.documents.logo import remove_logo, set_logo
from crmcore.documents.pdf import (
    BASE_TEMPLATE,
    LABELS,
    LOGO_URL,
    css_string,
    plugin_template_folders,
    render_html,
    render_pdf,
    store_pdf,
    template_environment,
)
from crmcore.documents.profile import (
    BusinessProfile,
    address_lines,
    business_profile,
    default_paper_size,
    document_locale,
    update_profile,
)

__all__ = [
    "BASE_TEMPLATE", "LABELS", "LOGO_URL", "BusinessProfile", "address_lines", "business_profile", "css_string",
    "default_paper_size", "document_locale", "plugin_template_folders", "remove_logo", "render_html",
    "render_pdf", "set_logo", "store_pdf", "template_environment", "update_profile",
]
