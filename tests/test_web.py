"""The web view in process (Starlette's TestClient): escaping, path refusal, tokens, /api equal to
the command line's --json, paging, and a repository left byte-identical by serving it."""

from __future__ import annotations

import json
import re
import time
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
    markup in its metadata, in the runs ``run-a`` (v001, v002) and ``run-b`` (v003, and v004
    deleted: kept by its pre_deletion pin only), a pin."""
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
            meta={"note": f"<i>{seed}</i>"},
            run="run-a" if seed < 2 else "run-b",
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
        ("/api/versions/v002~1", ["show", "v002~1"]),
        ("/api/compare?a=v001&b=v003", ["diff", "v001", "v003"]),
        ("/api/pins", ["backup", "list"]),
        ("/api/stats", ["stats"]),
        ("/api/runs", ["runs"]),
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


def test_compare_reads_forward_when_versions_share_a_second(tmp_path: Path) -> None:
    """``created`` is to the second and a run commits several versions within one: the compare
    page still diffs oldest to newest (by number), whatever order the versions were ticked in
    (the versions page ticks them newest first). It diffed v003 to v001 before."""
    repo = Repository.init(tmp_path / ".vault")
    models = [make_model_dir(tmp_path / f"m{seed}", seed=seed, shards=1) for seed in range(3)]
    time.sleep(1.02 - time.time() % 1)  # three small commits well inside one second
    for seed, model in enumerate(models):
        repo.commit(model, f"model {seed}")
    created = {repo.show(f"v00{n}").created for n in (1, 2, 3)}
    assert len(created) == 1
    html = (
        TestClient(create_app(Repository.open(tmp_path / ".vault")))
        .get("/compare?v=v003&v=v002&v=v001")
        .text
    )
    assert re.findall(r'<section class="diff" data-a="(\w+)" data-b="(\w+)"', html) == [
        ("v001", "v002"),
        ("v001", "v003"),
    ]


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
        "/api/runs",
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
    assert "next in run" not in html  # v003 starts run-b
    assert 'next in run: <a href="/versions/v002">v002</a>' in client.get("/versions/v001").text
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


def test_runs_page_shows_each_runs_curve_and_best_version(tmp_path: Path) -> None:
    """Two runs of real checkpoints (runkit.two_runs), exp1's best pinned, and a third run whose
    name holds markup: each run's row, best version and curve (one SVG point per logged step
    over all its versions), /api/runs equal to 'vault runs --json', and the run column."""
    from runkit import trainer_checkpoint, two_runs

    repo = two_runs(tmp_path)
    ckpt = trainer_checkpoint(tmp_path / "other" / "checkpoint-2", 2, 1.0, evals=False)
    ok(run_vault(repo, "commit", str(ckpt), "--run", "<i>r</i>", "-m", "markup"))
    ok(run_vault(repo, "pin", "v003", "--name", "best-exp1", "--type", "best", "--reason", "b"))
    client = TestClient(create_app(Repository.open(repo)))
    assert client.get("/api/runs").json() == cli_json(repo, "runs")
    html = client.get("/runs").text
    assert "<i>" not in html and "&lt;i&gt;r&lt;/i&gt;" in html
    rows = re.findall(r'<tr data-run="([^"]*)">(.*?)</tr>', html, re.S)
    assert [r for r, _ in rows] == ["exp1", "exp2", "&lt;i&gt;r&lt;/i&gt;"]
    assert '<td class="best"><a href="/versions/v003">v003</a></td>' in rows[0][1]
    assert '<td class="best">-</td>' in rows[1][1]
    assert "(pin <code>best-exp1</code>)" in html

    def points(svg_id: str) -> dict[str, int]:
        svg = html.split(f'id="{svg_id}"', 1)[1].split("</svg>", 1)[0]
        return {k: int(n) for k, n in re.findall(r'data-series="([^"]*)" data-points="(\d+)"', svg)}

    assert points("curve-1") == {"loss": 6, "eval_loss": 3}  # exp1: v005 holds steps 1..6
    assert points("curve-2") == {"loss": 4}  # exp2: never evaluated
    assert points("runs-overlay") == {
        "exp1 loss": 6,
        "exp2 loss": 4,
        "&lt;i&gt;r&lt;/i&gt; loss": 2,
    }
    table = client.get("/versions").text
    assert re.search(r'data-version="v005">.*?<td>exp1</td>', table, re.S)
    assert [v["version"] for v in client.get("/api/versions?run=exp2").json()] == ["v004", "v002"]


def test_runs_page_of_a_repository_without_runs(client: TestClient) -> None:
    html = client.get("/runs").text
    assert 'data-run="run-a"' in html and 'data-run="run-b"' in html
    assert "This run records no learning curve." in html  # plain model folders: no curve


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
