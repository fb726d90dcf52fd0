"""`/docs`: the API reference readable in a browser, with no request leaving this host."""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit

from flask.testing import FlaskClient

# Every URL a page can name: attributes, CSS url(), and absolute URLs in its scripts.
_URLS = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']|url\(([^)]+)\)|(https?://[^\s"'<>]+)""")


def test_docs_answer_without_a_token(client: FlaskClient) -> None:
    page = client.get("/docs/")
    assert page.status_code == 200
    assert page.mimetype == "text/html"
    assert b"swagger-ui" in page.data
    assert b'"url": "/openapi.json"' in page.data
    # Routing never redirects (strict slashes off): /docs is the page too, its assets absolute.
    assert client.get("/docs").status_code == 200


def test_the_page_names_only_local_urls_and_each_one_is_served(client: FlaskClient) -> None:
    page = client.get("/docs/")
    html = page.get_data(as_text=True)
    found = [next(part for part in match if part) for match in _URLS.findall(html)]
    assert found, "the page loads its scripts and styles from somewhere"
    for url in found:
        absolute = urljoin("http://localhost/docs/", url.strip("'\""))
        assert urlsplit(absolute).netloc == "localhost", f"{url} is not on this host"
    assets = [u for u in found if u.endswith((".js", ".css", ".png"))]
    assert {"/docs/swagger-ui-bundle.js", "/docs/swagger-ui.css"} <= set(assets)
    for url in assets:
        assert client.get(url).status_code == 200, url
    # Swagger UI would otherwise ask an online validator for a badge image.
    assert '"validatorUrl": null' in html
    policy = page.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "connect-src 'self'" in policy
    assert page.headers["X-Frame-Options"] == "DENY"


def test_the_openapi_document_it_shows_is_public(client: FlaskClient) -> None:
    document = client.get("/openapi.json")
    assert document.status_code == 200
    assert document.get_json()["openapi"].startswith("3.")
