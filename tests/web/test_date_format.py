"""The page filters' date formatting agrees with Babel's own ``format_datetime``.

``pages.date`` parses Babel's patterns once per language instead of on every call (a list row
paid a quarter of its rendering for it); these tests hold it to Babel's output.
"""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime
from flask import Flask, g
from hypothesis import given, settings
from hypothesis import strategies as st

from crmcore.web import pages

LANGUAGES = ["en", "fr", "de", "nl", "ja", "ar", "en_GB", "pt-BR", "not-a-language"]
ZONES = ["UTC", "Europe/Brussels", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe", "Not/AZone"]

app = Flask(__name__)


def _business(language: str, zone: str) -> SimpleNamespace:
    return SimpleNamespace(business=SimpleNamespace(language=language, timezone=zone))


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except Exception:
        return ZoneInfo("UTC")


@settings(max_examples=300, deadline=None)
@given(st.datetimes(min_value=dt.datetime(1970, 1, 2), max_value=dt.datetime(2200, 1, 1)),
       st.sampled_from(LANGUAGES), st.sampled_from(ZONES))
def test_datetime_matches_babel(value: dt.datetime, language: str, zone: str) -> None:
    aware = value.replace(tzinfo=dt.UTC)
    expected = format_datetime(aware, "medium", tzinfo=_zone(zone), locale=pages._parsed_locale(language))
    with app.app_context():
        g.ctx = _business(language, zone)
        assert pages.date(aware) == expected
        assert pages.date(value) == expected  # naive values are UTC, as Babel takes them


@settings(max_examples=100, deadline=None)
@given(st.datetimes(min_value=dt.datetime(1970, 1, 2), max_value=dt.datetime(2200, 1, 1)),
       st.sampled_from(LANGUAGES), st.sampled_from(ZONES))
def test_day_is_the_local_date(value: dt.datetime, language: str, zone: str) -> None:
    aware = value.replace(tzinfo=dt.UTC)
    local_day = aware.astimezone(_zone(zone)).date()
    with app.app_context():
        g.ctx = _business(language, zone)
        assert pages.day(aware) == format_date(local_day, "medium", locale=pages._parsed_locale(language))
        assert pages.day(local_day) == pages.date(local_day)


def test_empty_values_and_no_business() -> None:
    with app.app_context():
        assert pages.date(None) == "" and pages.day(None) == ""
        # outside a business (login page): English, UTC
        assert pages.date(dt.datetime(2026, 11, 24, 23, 30, tzinfo=dt.UTC)) == "Nov 24, 2026, 11:30:00\u202fPM"
        assert pages.day(dt.datetime(2026, 11, 24, 23, 30, tzinfo=dt.UTC)) == "Nov 24, 2026"
