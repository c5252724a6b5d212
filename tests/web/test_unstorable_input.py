"""Values no database can store (a NUL character, a lone surrogate) in a page's query string,
path or form: a 422 that names the field, never a 500, and nothing written. PostgreSQL refuses
NUL inside a query, so without the guard these pages failed there."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from crmcore.parties.models import Party

LIST_URLS = [
    "/parties/?q=%00",
    "/parties/?tag=%00",
    "/parties/count?tag=a%00b",
    "/contacts/?q=%00",
    "/records/deal/?q=%00",
    "/records/deal/board?q=%00",
    "/records/%00/",
]


@pytest.mark.parametrize("url", LIST_URLS)
def test_pages_refuse_unstorable_query_values(client, url):
    response = client.get(url)
    assert response.status_code == 422, response.status_code
    assert "cannot be stored" in response.get_data(as_text=True)


def test_json_callers_learn_which_field(client):
    response = client.get("/parties/?status=new&q=ab%00c", headers={"Accept": "application/json"})
    assert response.status_code == 422
    body = response.get_json()
    assert body["errors"] == {"q": ["remove the NUL character"]}


def test_a_bad_key_is_named_as_a_key(client):
    response = client.get("/parties/?a%00b=1", headers={"Accept": "application/json"})
    assert response.status_code == 422 and "_keys" in response.get_json()["errors"]


def test_a_form_with_a_nul_writes_nothing(client, ctx):
    response = client.post("/parties/new", {"kind": "organisation", "name": "Bad\x00Name"},
                           headers={"Accept": "application/json"})
    assert response.status_code == 422
    assert response.get_json()["errors"] == {"name": ["remove the NUL character"]}
    assert ctx.session.scalar(select(func.count()).select_from(Party)) == 0


def test_ordinary_values_pass(client):
    assert client.get("/parties/?q=%C3%A9t%C3%A9").status_code == 200  # "été"
    assert client.post("/parties/new", {"kind": "organisation", "name": "Fine Name"}).status_code == 302
