"""The only way a document reaches anything outside its HTML: ``data:`` URIs and the resources
the renderer hands it (the business logo). Every other URL (``http:``, ``https:``, ``file:``,
``ftp:``, relative paths) is refused without being opened, so a template or a value in it can
neither make the server call an address (SSRF) nor copy a local file into a PDF.

WeasyPrint sends every fetch (images, stylesheets, fonts, ``<object>``, attachments) through
the fetcher it is given; a refusal is an ordinary fetch error to it: the resource is left out
and the document still renders.
"""

from __future__ import annotations

import base64
import binascii
import logging
from urllib.parse import unquote_to_bytes

from weasyprint.urls import URLFetcher, URLFetcherResponse

log = logging.getLogger("crmcore.documents")

DATA_MAX_BYTES = 2 * 1024 * 1024
TOTAL_MAX_BYTES = 16 * 1024 * 1024


class RefusedURL(ValueError):
    """A document asked for a URL it may not fetch."""


class DocumentFetcher(URLFetcher):
    """Serves ``data:`` URIs and the named in-memory ``resources``; refuses the rest.

    ``resources`` maps an exact URL (such as ``crm-document:logo``) to ``(bytes, content type)``.
    ``refused`` lists what was asked for and not served (for logs and tests). The total of
    what one document may fetch is capped.
    """

    def __init__(self, resources: dict[str, tuple[bytes, str]] | None = None) -> None:
        super().__init__(timeout=1, allowed_protocols=(), allow_redirects=False, fail_on_errors=False)
        self.resources = dict(resources or {})
        self.refused: list[str] = []
        self._served = 0

    def fetch(self, url: str, headers: dict[str, str] | None = None) -> URLFetcherResponse:
        if url in self.resources:
            data, content_type = self.resources[url]
        elif url[:5].lower() == "data:":
            data, content_type = _decode_data_url(url)
        else:
            self.refused.append(url[:200])
            log.info("document asked for %.200s: refused (only data: URIs and the logo are served)", url)
            raise RefusedURL(f"documents may not fetch {url[:80]!r}")
        self._served += len(data)
        if self._served > TOTAL_MAX_BYTES:
            self.refused.append(url[:200])
            raise RefusedURL("the document's embedded resources are too large")
        return URLFetcherResponse(url, body=data, headers={"Content-Type": content_type})

    def open(self, url: object, data: object = None, timeout: object = None) -> URLFetcherResponse:
        """Never the opener's own handlers (file, http, ftp): everything goes through fetch."""
        return self.fetch(str(getattr(url, "full_url", url)))


def _decode_data_url(url: str) -> tuple[bytes, str]:
    """``data:[<type>][;base64],<payload>`` (RFC 2397) -> (bytes, type)."""
    header, comma, payload = url[5:].partition(",")
    if not comma:
        raise RefusedURL("a data: URI without a comma")
    params = [p.strip() for p in header.split(";")]
    is_base64 = params[-1].lower() == "base64"
    if is_base64:
        params = params[:-1]
    content_type = params[0].lower() if params and params[0] else "text/plain"
    if len(payload) > DATA_MAX_BYTES * 2:
        raise RefusedURL("a data: URI larger than the limit")
    try:
        data = base64.b64decode(unquote_to_bytes(payload), validate=False) if is_base64 else unquote_to_bytes(payload)
    except (binascii.Error, ValueError) as exc:
        raise RefusedURL("a data: URI that does not decode") from exc
    if len(data) > DATA_MAX_BYTES:
        raise RefusedURL("a data: URI larger than the limit")
    return data, content_type
