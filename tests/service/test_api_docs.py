"""Interactive API docs on a real server: /docs is a Swagger UI whose every asset this server serves
(no third-party script, style or tracker), / redirects there, and /docs.json describes the project,
not BentoML."""

from __future__ import annotations

import tomllib
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest

from tests.fixtures.servers import REPO_ROOT, RunningServer

pytestmark = pytest.mark.slow


class _Page(HTMLParser):
    """Every URL the page makes the browser load, and the text of inline scripts."""

    def __init__(self) -> None:
        super().__init__()
        self.loaded: list[tuple[str, str]] = []  # (tag, url)
        self.inline_scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "script":
            self._in_script = values.get("src") is None
        for attribute in ("src", "href"):
            url = values.get(attribute)
            if url and not url.startswith("data:"):
                self.loaded.append((tag, url))

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_scripts.append(data)


def test_root_redirects_to_the_docs(server: RunningServer) -> None:
    with server.client(api_key=None) as client:
        response = client.get("/")
    assert response.status_code in (301, 302, 307, 308)
    assert response.headers["location"] == "/docs"


def test_docs_page_loads_only_same_origin_assets_that_answer(server: RunningServer) -> None:
    with server.client(api_key=None) as client:  # the docs need no key; the API calls do
        page = client.get("/docs")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        parsed = _Page()
        parsed.feed(page.text)
        assert parsed.inline_scripts == []  # a tag manager snippet would be one
        assert "googletagmanager" not in page.text
        tags = {tag for tag, _ in parsed.loaded}
        assert {"script", "link"} <= tags
        page_url = f"{server.base_url}/docs"
        for tag, url in parsed.loaded:
            absolute = urljoin(page_url, url)
            assert urlsplit(absolute).netloc == urlsplit(server.base_url).netloc, url
            asset = client.get(absolute)
            assert asset.status_code == 200, url
            expected = "javascript" if tag == "script" else "css"
            assert expected in asset.headers["content-type"], url
        initializer = next(url for tag, url in parsed.loaded if url.endswith("initializer.js"))
        script = client.get(initializer).text
    assert '"/docs.json"' in script  # the spec comes from this server too
    assert "validatorUrl: null" in script  # Swagger UI's default posts to validator.swagger.io


def test_openapi_info_is_the_projects(server: RunningServer) -> None:
    with server.client(api_key=None) as client:
        info = client.get("/docs.json").json()["info"]
    project = tomllib.loads(Path(REPO_ROOT, "pyproject.toml").read_text())["project"]
    assert info["title"] == "Moderation API"
    assert "/v1/moderations" in info["description"]
    assert "Bearer" in info["description"]
    assert "bentoml" not in str(info["contact"]).lower()
    assert info["contact"]["name"].startswith(project["name"])
    assert info["license"]["name"] == project["license"]["text"]
