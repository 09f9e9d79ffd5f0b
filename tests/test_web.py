"""The web view in process (Starlette's TestClient): escaping, path refusal, tokens, /api equal to
the command line's --json, paging, and a repository left byte-identical by serving it."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from conftest import make_model_dir
from faultkit import assert_clean_error, ok, run_vault, snapshot, vault_env
from starlette.testclient import TestClient

from vault import Repository
from vault.web import create_app
from vault.web.readonly import ReadOnlyBackend, ReadOnlyRepository

SCRIPT = "<script>alert('x')</script>"


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three versions of a small model (v002 tagged, with markup in its description), each with
    a ``run`` and markup in its metadata, a pin, and a fourth version deleted (kept by its
    pre_deletion pin only)."""
    root = tmp_path_factory.mktemp("webrepo")
    repo = Repository.init(root / ".vault")
    for seed in range(4):
        model = make_model_dir(root / f"m{seed}", seed=seed)
        (model / "sub").mkdir()
        (model / "sub" / "notes <b>.txt").write_text(f"notes {seed}\n")
        repo.commit(
            model,
            f"model {seed} {SCRIPT}" if seed == 1 else f"model {seed}",
            tags=["good"] if seed == 1 else [],
            meta={"run": "run-a" if seed < 2 else "run-b", "note": f"<i>{seed}</i>"},
            steps=10 * (seed + 1),
            loss=1.0 / (seed + 1),
        )
    repo.pin("v001", type="manual", reason=f"keep {SCRIPT}", name="keep")
    repo.delete("v004", confirm=True, reason="bad run")
    return root / ".vault"


@pytest.fixture(scope="module")
def client(example: Path) -> TestClient:
    return TestClient(create_app(Repository.open(example)))


def cli_json(repo: Path, *args: str) -> object:
    return json.loads(ok(run_vault(repo, *args, "--json")).stdout)


@pytest.mark.parametrize(
    ("url", "argv"),
    [
        ("/api/versions", ["log"]),
        ("/api/versions?all=1", ["log", "--all"]),
        ("/api/versions?n=2", ["log", "-n", "2"]),
        ("/api/versions?rev=v002", ["log", "v002"]),
        ("/api/versions/v002", ["show", "v002"]),
        ("/api/versions/latest~1", ["show", "latest~1"]),
        ("/api/compare?a=v001&b=v003", ["diff", "v001", "v003"]),
        ("/api/pins", ["backup", "list"]),
        ("/api/stats", ["stats"]),
    ],
)
def test_api_equals_the_cli_json(client: TestClient, example: Path, url: str, argv: list[str]):
    response = client.get(url)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == cli_json(example, *argv)


def test_api_errors_are_json_with_the_cli_code_and_kind(client: TestClient, example: Path):
    response = client.get("/api/versions/v999")
    assert response.status_code == 404
    cli = run_vault(example, "show", "v999")
    assert response.json() == {
        "error": {"code": 3, "kind": "not_found", "message": "unknown revision: v999"}
    }
    assert cli.returncode != 0 and "unknown revision: v999" in cli.stderr
    for url, status in [
        ("/api/compare?a=v001", 400),
        ("/api/versions?page=zero", 400),
        ("/api/versions?sort=nope", 400),
        ("/api/nothing", 404),
    ]:
        got = client.get(url)
        assert got.status_code == status, url
        assert set(got.json()["error"]) == {"code", "kind", "message"}


def test_every_user_string_is_escaped(client: TestClient) -> None:
    pages = ["/versions", "/versions/v002", "/compare?v=v001&v=v002", "/pins", "/storage"]
    for url in pages + [f"/versions/{SCRIPT}", f"/compare?v={SCRIPT}&v=v001"]:
        html = client.get(url).text
        assert "<script" not in html, url
        assert "<i>" not in html and "<b>" not in html, url
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in client.get("/versions/v002").text
    assert "&lt;i&gt;1&lt;/i&gt;" in client.get("/versions/v002").text
    assert "notes &lt;b&gt;.txt" in client.get("/versions/v001").text
    assert "keep &lt;script&gt;" in client.get("/pins").text


def test_pages_carry_a_policy_that_forbids_script(client: TestClient) -> None:
    headers = client.get("/versions").headers
    assert "default-src 'none'" in headers["content-security-policy"]
    assert "script-src" not in headers["content-security-policy"]  # none: default-src 'none'
    assert headers["x-content-type-options"] == "nosniff"


def test_download_streams_the_verified_bytes(client: TestClient, tmp_path: Path) -> None:
    Repository.open(client.app.state.site.repo.backend).checkout("v002", tmp_path / "out")
    for path in ["model-00001-of-00002.safetensors", "config.json", "sub/notes <b>.txt"]:
        url = "/versions/v002/files/" + path.replace(" ", "%20").replace("<", "%3C")
        response = client.get(url.replace(">", "%3E"))
        assert response.status_code == 200, path
        assert response.content == (tmp_path / "out" / path).read_bytes()
        assert response.headers["content-type"] == "application/octet-stream"
        assert response.headers["content-disposition"].startswith("attachment;")


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("%2e%2e/%2e%2e/config.json", 400),
        ("sub/%2e%2e/config.json", 400),
        ("%2Fetc%2Fpasswd", 400),
        ("sub//notes", 400),
        ("%2e/config.json", 400),
        ("sub%5Cnotes", 400),
        ("missing.bin", 404),
        ("sub", 404),  # a directory is no file
        ("refs.json", 404),  # a repository file is no file of the version
    ],
)
def test_file_paths_resolve_only_to_files_of_the_version(
    client: TestClient, path: str, status: int
) -> None:
    html = client.get("/versions/v002/files/" + path)
    assert html.status_code == status
    assert "Traceback" not in html.text and 'id="error-message"' in html.text


def test_a_deleted_versions_files_answer_as_a_page(client: TestClient) -> None:
    assert client.get("/versions/v004").status_code == 404  # no name any more
    shown = client.get("/api/versions?all=1").json()
    deleted = [v for v in shown if v["version"] is None or v["version"] == "v004"]
    assert deleted and client.get(f"/versions/{deleted[0]['id']}").status_code == 200


def test_versions_page_filters_sorts_and_pages(client: TestClient) -> None:
    def names(url: str) -> list[str]:
        response = client.get(url)
        assert response.status_code == 200
        return [v["version"] for v in response.json()]

    assert names("/api/versions?run=run-a") == ["v002", "v001"]
    assert names("/api/versions?tag=good") == ["v002"]
    assert names("/api/versions?q=MODEL 2") == ["v003"]
    assert names("/api/versions?sort=loss&order=asc") == ["v003", "v002", "v001"]
    assert names("/api/versions?limit=2&page=1") == ["v003", "v002"]
    assert names("/api/versions?limit=2&page=2") == ["v001"]
    response = client.get("/api/versions?limit=2&page=2")
    assert response.headers["x-total-count"] == "3" and response.headers["x-pages"] == "2"
    html = client.get("/versions?limit=2&page=2").text
    assert 'data-version="v001"' in html and 'data-version="v003"' not in html
    assert "page 2 of 2" in html and 'rel="prev"' in html


def test_token_is_required_when_set(example: Path) -> None:
    client = TestClient(create_app(Repository.open(example), token="s3cret"))
    for url in [
        "/versions",
        "/api/versions",
        "/versions/v001/files/config.json",
        "/static/style.css",
    ]:
        response = client.get(url)
        assert response.status_code == 401, url
    assert client.get("/api/stats").json()["error"]["kind"] == "refused"
    assert client.get("/versions", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/versions", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    first = client.get("/versions?token=s3cret")
    assert first.status_code == 200
    assert "vault_token=s3cret" in first.headers["set-cookie"]
    assert "HttpOnly" in first.headers["set-cookie"]
    assert client.get("/versions/v001").status_code == 200  # the cookie carries it now


def test_serving_leaves_the_repository_byte_identical(example: Path, tmp_path: Path) -> None:
    before = snapshot(example)
    client = TestClient(create_app(Repository.open(example)))
    urls = [
        "/versions",
        "/versions?all=1&sort=steps",
        "/versions/v001",
        "/versions/v003",
        "/versions/nope",
        "/versions/v001/files/config.json",
        "/versions/v001/files/%2e%2e/x",
        "/compare?v=v001&v=v002&v=v003",
        "/pins",
        "/storage",
        "/runs",
        "/api/versions",
        "/api/versions/v002",
        "/api/versions/v002/tensors",
        "/api/compare?a=v001&b=v003",
        "/api/pins",
        "/api/stats",
        "/api/storage",
    ]
    for _ in range(5):
        for url in urls:
            assert client.get(url).status_code in (200, 400, 404), url
    assert snapshot(example) == before


def test_the_served_repository_refuses_writes(example: Path, tmp_path: Path) -> None:
    before = snapshot(example)
    site = TestClient(create_app(Repository.open(example))).app.state.site
    assert isinstance(site.repo.backend, ReadOnlyBackend)
    model = make_model_dir(tmp_path / "m", seed=9)
    with pytest.raises(ReadOnlyRepository):
        site.repo.commit(model, "must not land")
    with pytest.raises(ReadOnlyRepository):
        site.repo.tag("x", "v001")
    assert snapshot(example) == before


def test_listing_follows_refs_that_move(tmp_path: Path) -> None:
    repo = Repository.init(tmp_path / ".vault")
    repo.commit(make_model_dir(tmp_path / "a", seed=1), "one")
    client = TestClient(create_app(Repository.open(tmp_path / ".vault")))
    assert [v["version"] for v in client.get("/api/versions").json()] == ["v001"]
    repo.commit(make_model_dir(tmp_path / "b", seed=2), "two")
    repo.tag("t", "v001")
    got = client.get("/api/versions").json()
    assert [v["version"] for v in got] == ["v002", "v001"]
    assert got[1]["tags"] == ["t"]
    assert "v002" in client.get("/versions").text


def test_version_page_shows_tensors_lineage_and_new_bytes(client: TestClient) -> None:
    html = client.get("/versions/v002").text
    assert "layers.0.attn.weight" in html and "[64, 64]" in html and "F32" in html
    assert 'run parent: <a href="/versions/v001">v001</a>' in html
    assert 'next in run: <a href="/versions/v003">v003</a>' in html
    tensors = client.get("/api/versions/v002/tensors").json()
    assert {t["name"]: t["shape"] for t in tensors["model-00001-of-00002.safetensors"]} == {
        "layers.0.attn.weight": [64, 64],
        "layers.0.mlp.weight": [64, 128],
    }
    storage = client.get("/api/storage").json()
    new = {v["version"]: v["new_bytes"] for v in storage["new_bytes"]}
    sizes = {v["version"]: v["bytes"] for v in client.get("/api/versions").json()}
    assert new["v001"] == sizes["v001"]  # the first version adds all its bytes
    assert 0 < new["v002"] < sizes["v002"]  # config.json and the tokenizer are unchanged


def test_runs_page_is_a_placeholder(client: TestClient) -> None:
    response = client.get("/runs")
    assert response.status_code == 200 and 'id="runs-placeholder"' in response.text


def test_serves_a_repository_on_s3(
    example: Path, s3_server: Any, s3_bucket: str, s3_prefix: str, tmp_path: Path
) -> None:
    """``vault --repo s3://... serve`` reads the remote straight from the bucket."""
    from seaweed import credentials_env
    from webkit import served

    url = f"s3://{s3_bucket}/{s3_prefix}"
    env = vault_env(AWS_ENDPOINT_URL=s3_server.endpoint, **credentials_env())
    ok(run_vault(example, "remote", "add", "web", url, env=env))
    ok(run_vault(example, "push", "web", env=env))
    expected = cli_json(example, "log")
    with served(url, env=env) as (base, _printed):
        with urllib.request.urlopen(base + "/api/versions") as r:
            assert json.load(r) == expected
        with urllib.request.urlopen(base + "/versions/v002/files/config.json") as r:
            got = r.read()
    Repository.open(example).checkout("v002", tmp_path / "out")
    assert got == (tmp_path / "out" / "config.json").read_bytes()


def test_a_taken_port_is_one_error_line(example: Path) -> None:
    import socket

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        proc = run_vault(example, "serve", "--port", str(port), timeout=60)
    assert_clean_error(proc, "cannot listen", str(port))
    assert proc.returncode == 6
    assert proc.stdout == ""
