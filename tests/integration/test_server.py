"""The HTTP service, driven over real HTTP on 127.0.0.1 (uvicorn on a free port).

The store holds LUMA-Shapes images embedded by the shipped tiny CLIP (offline). Every test talks
to the server with httpx only: ingest, query (text and uploaded image), the gated answer,
delete, stats, gaps, body-size limits, the OpenAPI schema and the Prometheus scrape.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from luma_rag import Luma

pytest.importorskip("prometheus_client", reason="install the 'server' extra")

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 256 * 1024


def _free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from luma_rag.datasets import generate

    return generate(tmp_path_factory.mktemp("server") / "corpus", n=24, seed=3, size=64, workers=1)


@pytest.fixture(scope="module")
def server(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A store of 24 captioned images behind uvicorn on 127.0.0.1; yields url, luma, items."""
    import uvicorn

    from luma_rag.app.server import ServerConfig, create_app
    from luma_rag.datasets import load_manifest

    items = load_manifest(corpus)
    luma = Luma.open(tmp_path_factory.mktemp("server") / "store", encoder="luma-tiny")
    luma.ingest_images(
        [it.image_path for it in items],
        captions=[it.caption for it in items],
        metadatas=[it.attributes.as_dict() for it in items],
        ids=[it.id for it in items],
    )
    app = create_app(luma, config=ServerConfig(max_body_bytes=LIMIT))
    sock = _free_socket()
    srv = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert srv.started, "uvicorn did not start"
    host, port = sock.getsockname()
    yield {"url": f"http://{host}:{port}", "luma": luma, "items": items}
    srv.should_exit = True
    thread.join(timeout=10)
    sock.close()
    luma.close()


@pytest.fixture
def client(server: dict[str, Any]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server["url"], timeout=60) as c:
        yield c


def _scrape(client: httpx.Client) -> dict[str, float]:
    """``/metrics`` as {sample name + sorted labels: value}."""
    from prometheus_client.parser import text_string_to_metric_families

    res = client.get("/metrics")
    assert res.status_code == 200 and res.headers["content-type"].startswith("text/plain")
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(res.text):
        for s in family.samples:
            key = s.name + json.dumps(dict(sorted(s.labels.items())), separators=(",", ":"))
            out[key] = s.value
    return out


def _get(samples: dict[str, float], name: str, **labels: str) -> float:
    return samples.get(name + json.dumps(dict(sorted(labels.items())), separators=(",", ":")), 0.0)


def test_openapi_schema_lists_every_route(client: httpx.Client) -> None:
    schema = client.get("/openapi.json").json()
    paths = schema["paths"]
    for route, method in [
        ("/ingest/texts", "post"),
        ("/ingest/media", "post"),
        ("/query", "post"),
        ("/query/media", "post"),
        ("/answer", "post"),
        ("/items/{item_id}", "delete"),
        ("/items/delete", "post"),
        ("/stats", "get"),
        ("/gaps", "get"),
        ("/metrics", "get"),
    ]:
        assert method in paths[route], route
    assert "QueryRequest" in schema["components"]["schemas"]
    health = client.get("/health").json()
    assert health == {"status": "ok", "items": client.get("/stats").json()["total"]}


def test_text_query_returns_exact_scores_and_the_certificate(
    client: httpx.Client, server: dict[str, Any]
) -> None:
    item = server["items"][0]
    res = client.post("/query", json={"text": item.caption, "k": 5})
    assert res.status_code == 200, res.text
    body = res.json()
    assert body["kind"] == "text" and len(body["hits"]) == 5
    scores = [h["score"] for h in body["hits"]]
    assert scores == sorted(scores, reverse=True)
    direct = server["luma"].query(item.caption, k=5)
    assert [h["id"] for h in body["hits"]] == direct.ids
    assert scores == pytest.approx([h.score for h in direct.hits], abs=1e-6)
    tel = body["telemetry"]
    for key in ("margin_top2", "epsilon", "zeta_max", "rho", "safe1", "safek", "stages_ms"):
        assert key in tel
    assert tel["rho"] == pytest.approx(server["luma"].rho["text"])
    filtered = client.post(
        "/query", json={"text": item.caption, "k": 3, "filters": {"color": item.attributes.color}}
    ).json()
    assert all(h["metadata"]["color"] == item.attributes.color for h in filtered["hits"])


def test_ingest_get_and_delete_texts(client: httpx.Client) -> None:
    res = client.post(
        "/ingest/texts",
        json={
            "texts": ["a note about a purple hexagon"],
            "metadatas": [{"note": 1}],
            "ids": ["n1"],
        },
    )
    assert res.status_code == 200 and res.json() == {"ids": ["n1"]}
    top = client.post("/query", json={"text": "a note about a purple hexagon", "k": 1}).json()
    assert top["hits"][0]["id"] == "n1" and top["hits"][0]["score"] == pytest.approx(1.0, abs=1e-5)
    item = client.get("/items/n1").json()
    assert item["text"] == "a note about a purple hexagon" and item["metadata"] == {"note": 1}
    assert client.delete("/items/n1").json() == {"deleted": ["n1"]}
    gone = client.get("/items/n1")
    assert gone.status_code == 404 and "n1" in gone.json()["detail"]
    again = client.delete("/items/n1")
    assert again.status_code == 404 and again.json()["error"] == "NotFoundError"
    partial = client.post("/items/delete", json={"ids": [item["id"], "nope"]})
    assert partial.status_code == 404


def test_uploaded_image_is_stored_and_found_by_an_image_query(
    client: httpx.Client, server: dict[str, Any]
) -> None:
    path = Path(server["items"][5].image_path)
    with path.open("rb") as f:
        res = client.post(
            "/ingest/media",
            files={"file": ("upload.png", f, "image/png")},
            data={"caption": "an uploaded shape", "metadata": '{"upload": true}', "id": "up1"},
        )
    assert res.status_code == 200, res.text
    stored = server["luma"].get(["up1"])[0]
    assert stored["modality"] == "image" and Path(stored["source"]).is_file()
    assert Path(stored["source"]).parent == server["luma"].path / "uploads"
    with path.open("rb") as f:
        hits = client.post("/query/media", files={"file": ("q.png", f)}, data={"k": "2"}).json()
    assert hits["kind"] == "image"
    assert {h["id"] for h in hits["hits"]} == {"up1", server["items"][5].id}
    bad = client.post("/ingest/media", files={"file": ("notes.xyz", b"hello")})
    assert bad.status_code == 422 and ".png" in bad.json()["detail"]
    client.delete("/items/up1")


def test_bad_requests_say_what_to_change(client: httpx.Client) -> None:
    assert client.post("/query", json={"text": "a red circle", "k": 0}).status_code == 422
    assert client.post("/query", json={"text": "x", "bogus": 1}).status_code == 422
    bad_filter = client.post("/query", json={"text": "a red circle", "filters": {"nokey": 1}})
    assert bad_filter.status_code == 422 and bad_filter.json()["error"] == "InvalidInputError"
    assert client.get("/gaps", params={"limit": 0}).status_code == 422
    bad_k = client.post("/answer", json={"question": "a red circle", "k": 6, "k_max": 3})
    assert bad_k.status_code == 422 and "k_max" in bad_k.json()["detail"]


def test_request_bodies_over_the_limit_are_refused(client: httpx.Client) -> None:
    big = {"texts": ["x" * 5000] * 60}  # ~300 KB of JSON, over the 256 KiB test limit
    declared = client.post("/ingest/texts", json=big)
    assert declared.status_code == 413 and "limit" in declared.json()["detail"]

    def chunks(n: int) -> Iterator[bytes]:
        for _ in range(n):
            yield b"x" * 65536

    streamed = client.post("/ingest/texts", content=chunks(8))  # chunked, no Content-Length
    assert streamed.status_code == 413
    small = client.post("/query", content=json.dumps({"text": "a red circle"}).encode(),
                        headers={"content-type": "application/json"})  # fmt: skip
    assert small.status_code == 200


def test_answers_gaps_and_metrics_agree(client: httpx.Client, server: dict[str, Any]) -> None:
    before = _scrape(client)
    questions = [it.caption for it in server["items"][:4]] + ["a shape"]
    replies = [client.post("/answer", json={"question": q, "k": 3}).json() for q in questions]
    for r in replies:
        assert r["decision"] in ("answer", "widen", "clarify") and r["text"]
        if r["decision"] != "clarify":
            assert r["citations"] and r["citations"][0]["rank"] == 1
    n_text = 3
    for q in questions[:n_text]:
        client.post("/query", json={"text": q, "k": 3})
    after = _scrape(client)

    gaps = client.get("/gaps", params={"limit": 1000}).json()
    clarified = [r for r in replies if r["decision"] == "clarify"]
    assert all(r["gap_id"] is not None for r in clarified)
    assert _get(after, "luma_knowledge_gaps") == len(gaps) >= len(clarified)
    for kind in ("answer", "widen", "clarify"):
        delta = _get(after, "luma_gate_decisions_total", decision=kind) - _get(
            before, "luma_gate_decisions_total", decision=kind
        )
        assert delta == sum(r["decision"] == kind for r in replies)
    # each answer fetched once or twice (a re-query when k could not settle it)
    queries = _get(after, "luma_queries_total", kind="text") - _get(
        before, "luma_queries_total", kind="text"
    )
    requeried = sum(r["numbers"]["k_checked"] > 3 for r in replies)
    assert queries == len(replies) + requeried + n_text
    totals = _get(after, "luma_query_stage_seconds_count", stage="total") - _get(
        before, "luma_query_stage_seconds_count", stage="total"
    )
    assert totals == queries
    encoded = _get(after, "luma_query_stage_seconds_count", stage="encode") - _get(
        before, "luma_query_stage_seconds_count", stage="encode"
    )
    assert encoded >= n_text  # the gate embeds once and searches by vector: no encode stage
    assert _get(after, "luma_query_rho_count") == _get(after, "luma_query_epsilon_count")
    safe = sum(_get(after, "luma_queries_safe1_total", kind=k) for k in ("text", "image"))
    total = sum(_get(after, "luma_queries_total", kind=k) for k in ("text", "image"))
    assert _get(after, "luma_safe1_rate") == pytest.approx(safe / total)
    stats = client.get("/stats").json()
    assert _get(after, "luma_items", tier="hot") == stats["hot"]
    assert _get(after, "luma_items", tier="warm") == stats["warm"]
    assert _get(after, "luma_items", tier="total") == stats["total"]
    assert _get(after, "luma_requests_total", route="/answer", status="200") >= len(replies)


def test_luma_serve_main_binds_127_0_0_1_and_stops_cleanly(
    server: dict[str, Any], tmp_path: Path
) -> None:
    import shutil

    store = tmp_path / "s"  # a copy of the module's store: its radii are calibrated already
    shutil.copytree(server["luma"].path, store, ignore=shutil.ignore_patterns("*.lock", "LOCK"))
    sock = _free_socket()
    port = sock.getsockname()[1]
    sock.close()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "integrations")])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "luma_rag.app.server", "--store", str(store), "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    health = None
    try:
        deadline = time.monotonic() + 300  # loading torch on a busy machine takes a while
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).json()
                break
            except httpx.TransportError:
                time.sleep(0.5)
        if health is not None:
            other = socket.gethostbyname(socket.gethostname())
            if not other.startswith("127."):  # not reachable on the machine's other interfaces
                with pytest.raises(httpx.TransportError):
                    httpx.get(f"http://{other}:{port}/health", timeout=2)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            rc = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
        output = proc.stdout.read() if proc.stdout else ""
    assert health == {"status": "ok", "items": len(server["luma"])}, output
    assert rc == 0, output
    assert f"127.0.0.1:{port}" in output


def test_luma_serve_is_a_cli_command(capsys: pytest.CaptureFixture[str]) -> None:
    from luma_rag.cli import main

    assert main(["serve", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--max-body-mb" in out and "127.0.0.1" in out
