"""The staff console's routes without a browser: who gets the page, its policy, its assets, the
answer before it is built, its sign-in page, its saved examples and the built output."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from graphql import build_schema, get_introspection_query, parse, validate

import settings as config
from auth.scopes import STAFF_ROLES
from models.enums import Role
from tests.helpers import ROOT, sign_in
from web.console import CONSOLE_CSP, NOT_BUILT

INDEX = '<!doctype html><title>OCIS console</title><script src="/console/assets/a-1.js"></script>'
ASSET = "console.log('built');\n"
EXAMPLES = ROOT / "console" / "src" / "examples.json"
BUILT = ROOT / "console" / "dist"
STAFF = ["admin@example.com", "privacy@example.com", "lead@example.com", "agent@example.com"]
CUSTOMERS = ["customer@example.com", "customer2@example.com"]


@pytest.fixture
def dist(tmp_path: Path) -> Path:
    """A stand-in for console/dist: an index and one hashed asset."""
    root = tmp_path / "dist"
    (root / "assets").mkdir(parents=True)
    (root / "index.html").write_text(INDEX)
    (root / "assets" / "a-1.js").write_text(ASSET)
    (root / "assets" / "a-1.css").write_text("body { margin: 0 }\n")
    return root


@pytest.fixture
def app_settings(app_settings: config.Settings, dist: Path) -> config.Settings:
    return replace(app_settings, console_dist=dist)


async def _console(client: httpx.AsyncClient, email: str | None) -> httpx.Response:
    client.cookies.clear()
    cookie = {"cookie": f"ocis_session={await sign_in(client, email)}"} if email else {}
    return await client.get("/console", headers=cookie)


async def test_an_anonymous_visitor_is_sent_to_sign_in_and_back(
    client: httpx.AsyncClient, demo: None
) -> None:
    response = await _console(client, None)
    assert response.status_code == 303
    assert response.headers["location"] == "/console/sign-in?next=%2Fconsole"
    assert INDEX not in response.text


async def test_a_revoked_session_cookie_is_sent_to_sign_in(
    client: httpx.AsyncClient, demo: None
) -> None:
    response = await client.get("/console", headers={"cookie": "ocis_session=" + "x" * 43})
    assert response.status_code == 303
    assert response.headers["location"] == "/console/sign-in?next=%2Fconsole"


@pytest.mark.parametrize("email", CUSTOMERS)
async def test_a_customer_gets_403_and_not_the_console(
    client: httpx.AsyncClient, demo: None, email: str
) -> None:
    response = await _console(client, email)
    assert response.status_code == 403
    assert "403: the console is for staff" in response.text
    assert "/console/assets/" not in response.text
    assert "'unsafe-inline'" not in response.headers["content-security-policy"]
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("email", STAFF)
async def test_staff_get_the_built_page_under_a_strict_policy(
    client: httpx.AsyncClient, demo: None, email: str
) -> None:
    response = await _console(client, email)
    assert response.status_code == 200
    assert response.text == INDEX
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["cache-control"] == "no-store"
    # The route's own policy, and the global frame-ancestors one beside it (both enforced).
    policies = response.headers.get_list("content-security-policy")
    assert policies == [CONSOLE_CSP, "frame-ancestors 'none'"]


def _directives(policy: str) -> dict[str, list[str]]:
    parts = (part.split() for part in policy.split(";") if part.strip())
    return {name: values for name, *values in parts}


def test_the_console_policy_allows_no_eval_no_inline_script_and_no_other_origin() -> None:
    directives = _directives(CONSOLE_CSP)
    assert directives["default-src"] == ["'self'"]
    assert directives["script-src"] == ["'self'"]
    assert directives["frame-ancestors"] == ["'none'"]
    assert directives["connect-src"] == ["'self'"]
    assert directives["worker-src"] == ["'self'"]
    assert directives["object-src"] == ["'none'"]
    assert directives["base-uri"] == ["'none'"]
    # Monaco writes <style> elements: inline styles, and only styles, are let through.
    assert directives["style-src"] == ["'self'", "'unsafe-inline'"]
    # GraphiQL's own stylesheet carries its fonts and icons inline as data: URLs.
    assert directives["font-src"] == directives["img-src"] == ["'self'", "data:"]
    every_source = {value for values in directives.values() for value in values}
    assert "'unsafe-eval'" not in every_source
    assert "blob:" not in every_source
    assert every_source <= {"'self'", "'none'", "'unsafe-inline'", "data:"}


async def test_before_the_build_the_console_answers_503_with_what_to_run(
    client: httpx.AsyncClient, demo: None, dist: Path
) -> None:
    (dist / "index.html").unlink()
    for email in (None, "agent@example.com"):
        response = await _console(client, email)
        assert response.status_code == 503
        assert response.text == NOT_BUILT == "console not built: run make console"
    (dist / "index.html").write_text(INDEX)
    assert (await _console(client, "agent@example.com")).status_code == 200


async def test_a_missing_build_directory_answers_503_and_404_not_500(
    app_settings: config.Settings, client: httpx.AsyncClient, app: Any, tmp_path: Path
) -> None:
    app.state.settings = replace(app_settings, console_dist=tmp_path / "never-built")
    assert (await client.get("/console")).status_code == 503
    assert (await client.get("/console/assets/a-1.js")).status_code == 404


async def test_built_assets_are_served_with_long_cache_headers(client: httpx.AsyncClient) -> None:
    script = await client.get("/console/assets/a-1.js")
    assert script.status_code == 200
    assert script.text == ASSET
    assert script.headers["content-type"].startswith(("text/javascript", "application/javascript"))
    assert script.headers["cache-control"] == "public, max-age=31536000, immutable"
    style = await client.get("/console/assets/a-1.css")
    assert style.status_code == 200
    assert style.headers["content-type"].startswith("text/css")


@pytest.mark.parametrize(
    "path",
    [
        "/console/assets/missing-2.js",
        "/console/assets/../index.html",
        "/console/assets/%2e%2e/index.html",
        "/console/assets/",
    ],
)
async def test_nothing_but_the_built_assets_is_served_there(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.get(path)
    assert response.status_code == 404
    assert INDEX not in response.text
    assert "immutable" not in response.headers.get("cache-control", "")


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
async def test_the_console_changes_nothing_and_takes_only_get(
    client: httpx.AsyncClient, method: str
) -> None:
    for path in ("/console", "/console/sign-in"):
        response = await client.request(method, path, json={})
        assert response.status_code == 405


async def test_the_sign_in_page_posts_json_by_its_script_under_a_strict_policy(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/console/sign-in", params={"next": "/console"})
    assert page.status_code == 200
    assert 'data-next="/console"' in page.text
    assert '<script src="/console/sign-in.js" defer></script>' in page.text
    assert "<script>" not in page.text
    assert "style=" not in page.text
    policies = page.headers.get_list("content-security-policy")
    assert policies[1:] == ["frame-ancestors 'none'"]
    directives = _directives(policies[0])
    assert directives["script-src"] == directives["style-src"] == ["'self'"]
    assert directives["frame-ancestors"] == ["'none'"]
    assert 'href="/auth/login/' not in page.text  # no provider configured here
    script = await client.get("/console/sign-in.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert "credentials: 'same-origin'" in script.text
    assert "'Content-Type': 'application/json'" in script.text
    assert "fetch('/auth/password'" in script.text
    style = await client.get("/console/sign-in.css")
    assert style.status_code == 200
    assert style.headers["content-type"].startswith("text/css")


@pytest.mark.parametrize(
    ("requested", "kept"),
    [
        (None, "/console"),
        ("/console", "/console"),
        ("https://attacker.example/console", "/"),
        ("//attacker.example/console", "/"),
        ("/\\attacker.example", "/"),
        ('/console"><script>alert(1)</script>', "/console&quot;&gt;&lt;script&gt;"),
    ],
)
async def test_the_return_path_stays_on_our_origin_and_is_escaped(
    client: httpx.AsyncClient, requested: str | None, kept: str
) -> None:
    params = {"next": requested} if requested is not None else {}
    page = await client.get("/console/sign-in", params=params)
    assert page.status_code == 200
    assert f'data-next="{kept}' in page.text
    assert "<script>alert" not in page.text
    assert "attacker.example" not in page.text


class TestWithProviders:
    @pytest.fixture
    def app_settings(self, app_settings: config.Settings) -> config.Settings:
        oidc = {
            "google": {"issuer": "https://accounts.google.com", "client_id": "console-test"},
            "corp": {"issuer": "https://sso.example.com", "client_id": "console-test"},
            "nameless": {"issuer": "https://sso.example.net", "client_id": ""},
        }
        return replace(app_settings, oidc=oidc)

    async def test_each_configured_provider_is_linked_with_the_return_path(
        self, client: httpx.AsyncClient
    ) -> None:
        page = await client.get("/console/sign-in", params={"next": "/console"})
        links = re.findall(r'href="(/auth/login/[^"]*)"', page.text)
        assert links == [
            "/auth/login/corp?next=%2Fconsole",
            "/auth/login/google?next=%2Fconsole",
        ]


class TestProductionIntrospection:
    """The console loads the schema by introspection, open to staff only in production."""

    @pytest.fixture
    def app_settings(self, app_settings: config.Settings) -> config.Settings:
        return replace(app_settings, env="production", public_url="https://ocis.example.com")

    async def _introspect(self, app: Any, email: str) -> httpx.Response:
        origin = "https://ocis.example.com"
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
        async with httpx.AsyncClient(transport=transport, base_url=origin) as http:
            signed_in = await http.post(
                "/auth/password",
                json={"email": email, "password": "ocis-demo"},
                headers={"origin": origin},
            )
            assert signed_in.status_code == 200, signed_in.text
            # As console/src/graphql.js sends it: JSON POST, our Origin, both media types.
            return await http.post(
                "/graphql",
                json={"query": get_introspection_query(), "operationName": "IntrospectionQuery"},
                headers={
                    "origin": origin,
                    "accept": "application/graphql-response+json, application/json",
                },
            )

    @pytest.mark.parametrize("email", STAFF)
    async def test_staff_introspect_from_the_console(
        self, app: Any, demo: None, email: str
    ) -> None:
        response = await self._introspect(app, email)
        assert response.status_code == 200, response.text
        body = response.json()
        assert "errors" not in body
        assert body["data"]["__schema"]["queryType"]["name"] == "Query"

    async def test_a_customer_may_not(self, app: Any, demo: None) -> None:
        response = await self._introspect(app, "customer@example.com")
        body = response.json()
        assert body.get("data") is None
        assert [error["extensions"]["code"] for error in body["errors"]] == [
            "INTROSPECTION_FORBIDDEN"
        ]


def _examples() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(EXAMPLES.read_text())
    return loaded


def test_every_saved_example_is_valid_against_the_committed_schema() -> None:
    schema = build_schema((ROOT / "schema" / "schema.graphql").read_text())
    loaded = _examples()
    examples = [*loaded["examples"], loaded["fallback"]]
    for example in examples:
        document = parse(example["query"])
        assert validate(schema, document) == [], example["title"]
        assert isinstance(example["variables"], dict)
        declared = {
            variable.variable.name.value
            for definition in document.definitions
            for variable in getattr(definition, "variable_definitions", None) or ()
        }
        assert set(example["variables"]) <= declared, example["title"]
    assert len({example["title"] for example in examples}) == len(examples)


def test_every_staff_role_opens_with_examples_and_the_three_asked_for_exist() -> None:
    examples = _examples()["examples"]
    for example in examples:
        assert example["roles"], example["title"]
        assert {Role[role] for role in example["roles"]} <= STAFF_ROLES
    for role in STAFF_ROLES:
        assert any(role.name in example["roles"] for example in examples), role
    fields = {
        example["title"]: {
            selection.name.value
            for definition in parse(example["query"]).definitions
            for selection in definition.selection_set.selections  # type: ignore[attr-defined]
        }
        for example in examples
    }
    assert "teamQueue" in fields["Team queue"]
    assert fields["Privacy requests"] == {"myPrivacyRequests"}
    assert fields["Privacy request"] == {"node"}
    assert fields["Audit trail"] == {"auditTrail"}


# Hosts that appear in the bundle as names, never fetched: XML namespaces, JSON Schema ids, and
# links in messages and licence comments. A URL in a place a browser loads from is checked apart.
NAMED_ONLY = {
    "www.w3.org",
    "json-schema.org",
    "github.com",
    "code.visualstudio.com",
    "yarnpkg.com",
    "react.dev",
    "prettier.io",
    "en.wikipedia.org",
    "commonmark.org",
    "microsoft.com",
}
LOADED_FROM = re.compile(
    r"""(?:\bsrc=|\bhref=|url\(|\bimport\s*\(|\bfrom\s*|new\s+Worker\s*\(|importScripts\s*\(|"""
    r"""fetch\s*\()\s*["'`]?(https?:)?//""",
    re.IGNORECASE,
)


def test_the_built_console_loads_nothing_from_another_host() -> None:
    if not (BUILT / "index.html").is_file():
        pytest.fail("the console is not built: run `make console` (make test does)")
    files = [path for path in BUILT.rglob("*") if path.suffix in (".html", ".js", ".css")]
    assert any(path.name.startswith("editor.worker-") for path in files)
    hosts: set[str] = set()
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        assert LOADED_FROM.search(text) is None, path.name
        hosts |= set(re.findall(r"https?://([A-Za-z0-9.-]+\.[A-Za-z]{2,})", text))
    assert hosts <= NAMED_ONLY, hosts - NAMED_ONLY
    references = re.findall(r'(?:src|href)="([^"]+)"', (BUILT / "index.html").read_text())
    assert references
    assert all(reference.startswith("/console/assets/") for reference in references)
