"""Take the README's screenshots of the web view: the example repository of the browser tests (a
real tiny Trainer run, see ``tests/webkit.py``) served by ``vault serve`` and shot in Debian's
Chromium by Playwright.

    .venv/bin/python docs/screenshots.py        # writes docs/img/web-*.png
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from playwright.sync_api import sync_playwright  # noqa: E402
from webkit import served, trainer_repo  # noqa: E402

SHOTS = {
    "web-versions.png": "/versions",
    "web-version.png": "/versions/v003",
    "web-compare.png": "/compare?v=v001&v=v003",
    "web-storage.png": "/storage",
}


def main() -> None:
    """Build the example, serve it, save one PNG per page of :data:`SHOTS`."""
    out = HERE / "img"
    out.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        repo = trainer_repo(Path(tmp))
        with served(repo) as (base, _printed), sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium")
            page = browser.new_page(viewport={"width": 1280, "height": 860})
            for name, url in SHOTS.items():
                page.goto(base + url)
                page.screenshot(path=str(out / name), full_page=name != "web-version.png")
                print(out / name)
            browser.close()


if __name__ == "__main__":
    main()
