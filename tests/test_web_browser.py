"""The web view in a real browser: Debian's Chromium driven by Playwright, against ``vault serve``
run as a subprocess over a repository made from a real tiny Trainer run.

What the README's "Web view" section says is checked here.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from faultkit import ok, run_vault, snapshot
from playwright.sync_api import Browser, Page, sync_playwright
from webkit import HOSTILE, served, trainer_repo

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repository of a tiny Trainer run (v001-v003) and a hostile description (v004)."""
    return trainer_repo(tmp_path_factory.mktemp("web"))


@pytest.fixture(scope="module")
def server(example: Path) -> Iterator[str]:
    """``vault serve`` on 127.0.0.1 over the example; the repository is unchanged after."""
    before = snapshot(example)
    with served(example) as (base, _printed):
        yield base
    assert snapshot(example) == before


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM)
        yield b
        b.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(accept_downloads=True)
    page = context.new_page()
    yield page
    context.close()


def cli_json(repo: Path, *args: str) -> object:
    return json.loads(ok(run_vault(repo, *args, "--json")).stdout)


def points(d: str) -> int:
    """The number of vertices of an SVG path of M and L commands."""
    return len(re.findall(r"[ML]", d))


def test_versions_page_lists_every_version(page: Page, server: str, example: Path) -> None:
    page.goto(server + "/")
    assert page.url == server + "/versions"
    log = cli_json(example, "log")
    assert isinstance(log, list)
    rows = page.locator("table#versions tbody tr")
    assert rows.count() == len(log) == 4
    assert [rows.nth(i).get_attribute("data-version") for i in range(4)] == [
        "v004",
        "v003",
        "v002",
        "v001",
    ]
    v002 = page.locator("tr[data-version=v002]")
    assert v002.locator("td").nth(5).inner_text() == "4"  # steps
    assert "best" in page.locator("tr", has=page.locator("span.pin")).first.inner_text()
    assert "release" in page.locator("tr[data-version=v004] span.tag").inner_text()


def test_version_page_draws_the_learning_curve(page: Page, server: str, example: Path) -> None:
    page.goto(server + "/versions")
    page.click("a[href='/versions/v003']")
    page.wait_for_url(server + "/versions/v003")
    shown = cli_json(example, "show", "v003")
    assert isinstance(shown, dict)
    logged = [e for e in shown["curve"] if "loss" in e]
    assert len(logged) == 6  # the loss is logged at every step of the run
    loss = page.locator("svg#curve path[data-series=loss]")
    assert loss.is_visible()
    assert points(loss.get_attribute("d") or "") == len(logged)
    evals = [e for e in shown["curve"] if "eval_loss" in e]
    eval_path = page.locator("svg#curve path[data-series=eval_loss]")
    assert points(eval_path.get_attribute("d") or "") == len(evals) == 3
    # The tensors of the model, from the safetensors header, with shape and dtype.
    q_proj = page.locator("table.tensors tr", has_text="model.layers.0.self_attn.q_proj.weight")
    assert "[32, 32]" in q_proj.inner_text()
    # Lineage: the run parent links back.
    page.click("#lineage a[href='/versions/v002']")
    page.wait_for_url(server + "/versions/v002")


def test_compare_two_versions_shows_changed_tensors(page: Page, server: str, example: Path) -> None:
    page.goto(server + "/versions")
    page.check("input[name=v][value=v001]")
    page.check("input[name=v][value=v003]")
    page.click("#compare-selected")
    page.wait_for_url(re.compile(r"/compare\?"))
    diff = cli_json(example, "diff", "v001", "v003")
    assert isinstance(diff, dict)
    changed = [t for t in diff["tensors"] if t["status"] == "changed"]
    assert changed  # a training step changes the weights
    rows = page.locator("section.diff table.tensor-diff tbody tr")
    assert rows.count() == len(diff["tensors"])
    first = rows.first.inner_text()
    assert diff["tensors"][0]["name"] in first
    assert f"{diff['tensors'][0]['rel_l2']:.3e}" in first
    assert page.locator("svg#curves path.series").count() == 4  # loss and eval_loss of each


def test_download_streams_the_files_bytes(
    page: Page, server: str, example: Path, tmp_path: Path
) -> None:
    page.goto(server + "/versions/v002")
    link = page.locator("#files a.download[href$='/model.safetensors']")
    with page.expect_download() as info:
        link.click()
    got = Path(info.value.path()).read_bytes()
    ok(run_vault(example, "checkout", "v002", str(tmp_path / "out")))
    assert got == (tmp_path / "out" / "model.safetensors").read_bytes()
    assert info.value.suggested_filename == "model.safetensors"


def test_script_in_a_description_is_inert(page: Page, server: str) -> None:
    messages: list[str] = []
    page.on("console", lambda m: messages.append(m.text))
    for url in ("/versions", "/versions/v004", "/compare?v=v003&v=v004"):
        page.goto(server + url)
        assert page.evaluate("window.__pwned") is None
        assert page.locator("main script").count() == 0
        assert page.locator("main img").count() == 0
    page.goto(server + "/versions/v004")
    assert page.locator("#description").inner_text() == f"release candidate {HOSTILE}"


def test_non_loopback_bind_without_a_token_gets_401(page: Page, example: Path) -> None:
    with served(example, host="0.0.0.0") as (base, printed):
        token = printed.split("?token=", 1)[1]
        assert len(token) >= 20
        response = page.goto(base + "/versions")
        assert response is not None and response.status == 401
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(base + "/api/versions")
        assert refused.value.code == 401
        assert json.load(refused.value)["error"]["kind"] == "refused"
        wrong = page.goto(base + "/versions?token=" + token[:-1] + "x")
        assert wrong is not None and wrong.status == 401
        # The printed address works, and the links from it too (the token is kept in a cookie).
        response = page.goto(printed.replace(printed.split("/?")[0], base))
        assert response is not None and response.status == 200
        page.click("a[href='/versions/v001']")
        assert page.locator("h1").inner_text() == "v001"
        bearer = urllib.request.Request(
            base + "/api/pins", headers={"Authorization": f"Bearer {token}"}
        )
        with urllib.request.urlopen(bearer) as r:
            assert [p["name"] for p in json.load(r)] == ["best-run"]
