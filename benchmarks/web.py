"""The web view's page times (issue 13's targets): the versions page of a 10,000-version
repository under 300 ms, the version page of a 1 GiB model under 200 ms, on the server.

Builds two repositories in a work directory:

* 10,000 versions of a tiny directory, as ``compare.py``'s target 6 builds them
  (:func:`compare.build_many_versions`: one real commit, then version objects named in one
  transaction);
* one version of a 1 GiB model: ``model.safetensors`` (256 float32 tensors of 4 MiB, random, so
  incompressible) with a ``trainer_state.json`` of 1,000 logged steps, committed as a checkpoint.

Then it times requests in process (Starlette's TestClient: the server's work, no network): the
first request of each page (cold caches), then the median of ``--repeats`` more. Run::

    python benchmarks/web.py                  # ~1.5 GB free in the work directory, ~1 min
    python benchmarks/web.py --json /tmp/web.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

sys.path.insert(0, str(Path(__file__).parent))

from compare import build_many_versions  # noqa: E402

from vault import Repository  # noqa: E402

VERSIONS = 10_000
TENSORS = 256
TENSOR_BYTES = 4 << 20
STEPS = 1000
TARGETS = {"versions": 0.300, "model": 0.200}


def build_model(root: Path) -> Path:
    """A 1 GiB checkpoint directory: ``model.safetensors`` and a ``trainer_state.json``."""
    ckpt = root / "checkpoint-1000"
    ckpt.mkdir(parents=True)
    rng = np.random.default_rng(0)
    n = TENSOR_BYTES // 4
    tensors = {
        f"model.layers.{i // 8}.proj{i % 8}.weight": rng.standard_normal(
            n, dtype=np.float32
        ).reshape(1024, n // 1024)
        for i in range(TENSORS)
    }
    save_file(tensors, str(ckpt / "model.safetensors"))
    del tensors
    history = [
        {"step": s, "loss": 2.0 / (1 + s / 100), "epoch": s / STEPS} for s in range(1, STEPS + 1)
    ]
    history += [{"step": s, "eval_loss": 2.1 / (1 + s / 100)} for s in range(100, STEPS + 1, 100)]
    state = {"global_step": STEPS, "log_history": history}
    (ckpt / "trainer_state.json").write_text(json.dumps(state))
    return ckpt


def timed(client, url: str, repeats: int) -> dict:  # type: ignore[no-untyped-def]
    """The first request's time, then the median (and every run) of ``repeats`` more."""

    def once() -> float:
        start = time.perf_counter()
        response = client.get(url)
        took = time.perf_counter() - start
        assert response.status_code == 200, (url, response.status_code, response.text[:300])
        return took

    first = once()
    runs = [once() for _ in range(repeats)]
    return {"url": url, "first": first, "median": statistics.median(runs), "runs": runs}


def main() -> None:
    """Build, time, print."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, help="where to build (default: a temp dir)")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs after the first")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--keep", action="store_true", help="keep the repositories")
    args = parser.parse_args()

    from starlette.testclient import TestClient

    from vault.web import create_app

    work = Path(tempfile.mkdtemp(prefix="vault-web-bench-", dir=args.workdir))
    out: dict = {"versions": VERSIONS, "model_bytes": TENSORS * TENSOR_BYTES}
    try:
        tiny = work / "tiny"
        tiny.mkdir()
        (tiny / "adapter_config.json").write_text('{"r": 16}\n')
        (tiny / "notes.txt").write_text("a tiny version\n")
        print(f"building {VERSIONS} versions ...", flush=True)
        out["build_versions_s"] = build_many_versions(work / "many", tiny, VERSIONS)
        app = create_app(Repository.open(work / "many"))
        client = TestClient(app)
        out["cold_versions_first"] = timed(client, "/versions", 1)["first"]
        app = create_app(Repository.open(work / "many"))
        client = TestClient(app)
        start = time.perf_counter()
        app.state.warm()  # what vault serve starts in the background when it starts
        out["warm_up_s"] = time.perf_counter() - start
        last = client.get("/api/versions?n=1").json()[0]["version"]
        out["many"] = [
            timed(client, url, args.repeats)
            for url in (
                "/versions",
                "/versions?page=100",
                "/versions?sort=date&order=asc",
                "/versions?q=tiny%205000",
                "/api/versions?limit=50",
                f"/versions/{last}",
            )
        ]
        Repository.open(work / "many").commit(tiny, "one more")  # the refs move
        out["after_commit"] = timed(client, "/versions", args.repeats)
        if not args.keep:
            shutil.rmtree(work / "many")

        print("building and committing a 1 GiB model ...", flush=True)
        start = time.perf_counter()
        ckpt = build_model(work / "model")
        repo = Repository.init(work / "big")
        repo.commit(ckpt, "a 1 GiB checkpoint")
        out["build_model_s"] = time.perf_counter() - start
        shutil.rmtree(work / "model")
        app = create_app(Repository.open(work / "big"))
        client = TestClient(app)
        out["model_cold_first"] = timed(client, "/versions/v001", 1)["first"]
        app = create_app(Repository.open(work / "big"))
        client = TestClient(app)
        app.state.warm()
        out["model"] = [
            timed(client, url, args.repeats)
            for url in ("/versions/v001", "/api/versions/v001", "/api/versions/v001/tensors")
        ]
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    print(
        f"\n{VERSIONS} versions: first /versions with nothing read yet"
        f" {out['cold_versions_first'] * 1000:.0f} ms; the warm-up vault serve starts with"
        f" {out['warm_up_s'] * 1000:.0f} ms; first /versions after a commit moved the refs"
        f" {out['after_commit']['first'] * 1000:.0f} ms"
    )
    print(
        f"1 GiB model: first /versions/v001 with nothing read yet"
        f" {out['model_cold_first'] * 1000:.0f} ms"
    )
    print(f"\n{'page (after the warm-up)':<44} {'first ms':>9} {'median ms':>10}  target")
    for group, target in (("many", TARGETS["versions"]), ("model", TARGETS["model"])):
        for row in out[group]:
            mark = ""
            if row["url"] in ("/versions", "/versions/v001"):
                mark = f"< {target * 1000:.0f} ms: " + (
                    "PASS" if row["median"] < target else "FAIL"
                )
            first, median = row["first"] * 1000, row["median"] * 1000
            print(f"{row['url']:<44} {first:>9.1f} {median:>10.1f}  {mark}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
