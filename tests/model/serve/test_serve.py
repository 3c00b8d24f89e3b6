"""`retriever serve` through a real uvicorn on a loopback port, with an HTTP client: what it answers equals
the Python API's answer, every bad request gets a 4xx with a JSON message, writes need the token and land
atomically, and SIGTERM lets an in-flight request finish."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from retriever import Retriever, api
from retriever.serve.server import ServerProcess

from ..search.test_concurrency import QUERIES

TOKEN = "test-token-0123456789abcdef"


@pytest.fixture(scope="module")
def server(demo_index, tmp_path_factory):
    log = tmp_path_factory.mktemp("serve") / "server.log"
    args = ["--index", f"demo={demo_index.path}", "--batch-wait-ms", "20", "--max-query-tokens", "64",
            "--max-batch-queries", "8", "--quiet"]
    with ServerProcess(args, log=str(log)) as running:
        yield running


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=server.url, timeout=120) as client:
        yield client


def _api_hits(retriever, query, **kwargs):
    return [h.to_dict() for h in retriever.search(query, **kwargs)]


def test_health_indexes_and_info(http, demo_index):
    health = http.get("/health")
    assert health.status_code == 200 and health.json()["status"] == "ready"
    assert health.json()["indexes"] == ["demo"]
    (listed,) = http.get("/indexes").json()["indexes"]
    assert listed["name"] == "demo" and listed["documents"] == demo_index.manifest["documents"]
    assert listed["modes"] == list(demo_index.modes) and listed["writing"] is False
    assert http.get("/indexes/demo").json() == api.info(demo_index.path)


@pytest.mark.parametrize("mode", ["hybrid", "dense", "sparse", "lexical"])
def test_search_equals_the_api(http, demo_index, mode):
    for query in QUERIES[:5]:
        got = http.post("/search", json={"query": query, "k": 7, "mode": mode})
        assert got.status_code == 200, got.text
        body = got.json()
        assert (body["query_id"], body["query"], body["mode"]) == ("1", query, mode)
        assert body["hits"] == _api_hits(demo_index, query, k=7, mode=mode)
        assert got.headers["server-timing"].startswith("search;dur=")
    quiet = http.post("/search", json={"query": QUERIES[0], "mode": mode, "explain": False}).json()
    assert quiet["hits"] == _api_hits(demo_index, QUERIES[0], mode=mode, explain=False)


def test_concurrent_searches_share_passes_and_equal_the_api(http, server, demo_index):
    expected = {q: _api_hits(demo_index, q, k=10) for q in QUERIES}

    def passes():
        (stats,) = server.health()["batching"]["indexes"]
        return stats["batches"], stats["texts"]

    before = passes()
    with ThreadPoolExecutor(16) as pool:
        got = list(pool.map(lambda q: http.post("/search", json={"query": q}).json()["hits"], QUERIES * 3))
    assert got == [expected[q] for q in QUERIES * 3]
    after = passes()
    assert after[1] - before[1] == 30 and after[0] - before[0] < 30  # 30 queries in fewer passes


def test_batch_endpoint_is_the_cli_schema(http, demo_index):
    got = http.post("/search/batch", json={"queries": QUERIES[:4], "k": 5, "explain": True})
    assert got.status_code == 200
    expected = [api.result(str(i), q, "hybrid", h)
                for i, (q, h) in enumerate(zip(QUERIES[:4], demo_index.search_batch(QUERIES[:4], k=5, explain=True),
                                               strict=True), 1)]
    assert got.json() == {"results": expected}
    cli = subprocess.run([sys.executable, "-m", "retriever.cli", "search", *QUERIES[:4], "--index",
                          str(demo_index.path), "-k", "5", "--json"], capture_output=True, text=True, timeout=300)
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout) == got.json()  # one schema: `retriever search --json` and the server


def test_filters(http, demo_index):
    flt = {"topic": {"in": ["bees", "volcano"]}}
    got = http.post("/search", json={"query": "honey and lava", "k": 10, "filter": flt}).json()["hits"]
    assert got == _api_hits(demo_index, "honey and lava", k=10, filter=flt)
    assert got and {h["metadata"]["topic"] for h in got} <= {"bees", "volcano"}
    by_id = http.post("/search", json={"query": "bees", "filter": {"_id": {"prefix": "vol"}}}).json()["hits"]
    assert by_id and all(h["id"].startswith("vol") for h in by_id)


def test_documents(http, demo_index):
    doc = http.get("/documents/bees")
    assert doc.status_code == 200 and doc.json() == demo_index.document("bees")
    assert doc.json()["title"] == "Honey bees" and doc.json()["metadata"] == {"topic": "bees"}
    assert http.get("/indexes/demo/documents/bees").json() == doc.json()
    assert http.get("/documents/bees", params={"index": "demo"}).json() == doc.json()
    missing = http.get("/documents/no-such-doc")
    assert missing.status_code == 404 and "no-such-doc" in missing.json()["error"]


def _long_query(words: int) -> str:
    return " ".join(["volcano"] * words)


BAD = [  # (method, path, keyword arguments for httpx, status, a piece of the message)
    ("POST", "/search", {"content": b"{not json", "headers": {"content-type": "application/json"}}, 400,
     "not valid JSON"),
    ("POST", "/search", {"json": ["a list"]}, 422, "valid dictionary"),
    ("POST", "/search", {"json": {"k": 3}}, 422, "query: Field required"),
    ("POST", "/search", {"json": {"query": "x", "k": "3"}}, 422, "k: Input should be a valid integer"),
    ("POST", "/search", {"json": {"query": "x", "k": 0}}, 422, "k: Input should be greater than or equal to 1"),
    ("POST", "/search", {"json": {"query": "x", "querry": "y"}}, 422, "querry: Extra inputs are not permitted"),
    ("POST", "/search", {"json": {"query": "x", "k": 5000}}, 400, "k is 5000; the limit is 1000"),
    ("POST", "/search", {"json": {"query": "x", "index": "nope"}}, 404, "no index named 'nope'"),
    ("POST", "/search", {"json": {"query": "x", "index": "../../etc/passwd"}}, 404, "no index named"),
    ("POST", "/search", {"json": {"query": "x", "mode": "fuzzy"}}, 400, "has no mode 'fuzzy'"),
    ("POST", "/search", {"json": {"query": "x", "filter": {"year": {"near": 3}}}}, 400, "unknown operator 'near'"),
    ("POST", "/search", {"json": {"query": "x", "filter": {"year": {"gte": [1]}}}}, 400, "takes a number"),
    ("POST", "/search", {"json": {"query": "   "}}, 400, "empty query"),
    ("POST", "/search", {"json": {"query": "v" * 4001}}, 400, "4,001 characters; the limit is 4,000"),
    ("POST", "/search", {"json": {"query": _long_query(100)}}, 400, "tokens; the limit is 64"),
    ("POST", "/search/batch", {"json": {"queries": ["a"] * 9}}, 400, "9 queries in one request; the limit is 8"),
    ("POST", "/search/batch", {"json": {"queries": []}}, 400, "no query"),
    ("POST", "/search/batch", {"json": {"queries": ["ok", ""]}}, 400, "empty query"),
    ("POST", "/search", {"content": b'{"query": "' + b"x" * (2 << 20) + b'"}',
                         "headers": {"content-type": "application/json"}}, 413, "over 1,048,576 bytes"),
    ("GET", "/indexes/nope", {}, 404, "no index named 'nope'"),
    ("GET", "/indexes/..%2F..%2Fetc", {}, 404, ""),
    ("GET", "/indexes/demo/documents/..%2F..%2Fmanifest.json", {}, 404, "has no document"),
    ("GET", "/no/such/endpoint", {}, 404, "Not Found"),
    ("DELETE", "/search", {}, 405, "Method Not Allowed"),
    ("POST", "/indexes/demo/documents", {"json": {"documents": [{"_id": "x", "text": "y"}]}}, 403, "writes are off"),
    ("DELETE", "/indexes/demo/documents/bees", {}, 403, "writes are off"),
]


@pytest.mark.parametrize(("method", "path", "kwargs", "status", "message"), BAD,
                         ids=[f"{m} {p[:30]} {s}" for m, p, _, s, _ in BAD])
def test_bad_requests_get_a_4xx_with_a_message(http, method, path, kwargs, status, message):
    got = http.request(method, path, **kwargs)
    assert got.status_code == status, got.text
    body = got.json()
    assert body["status"] == status and message in body["error"]
    assert "Traceback" not in got.text and 'File "' not in got.text


JSON = {"content-type": "application/json"}


@pytest.mark.parametrize(("raw", "status", "message"), [
    (b'{"query": "\\ud800 bees"}', 400, "invalid Unicode"),
    (b'{"query": "bees", "k": NaN}', 422, "k:"),
    (b'{"query": Infinity}', 422, "query:"),
    (b'{"query": "bees", "k": 1e999}', 422, "k:"),
    (b'{"query": "bees", "filter": {"year": {"gte": Infinity}}}', 400, "finite number"),
    (b'{"query": "bees", "filter": {}}', 400, "non-empty JSON object"),
    (b'{"query": "bees", "filter": "topic"}', 422, "filter:"),
    (b'\xff\xfe{"query": "bees"}', 400, "JSON"),
    (b"", 400, "must be a JSON object; it was empty"),
])
def test_odd_json_gets_a_4xx(http, raw, status, message):
    got = http.post("/search", content=raw, headers=JSON)
    assert got.status_code == status, got.text
    assert message in got.json()["error"]


def test_generated_requests_never_get_a_5xx(http):
    """Any JSON body hypothesis makes from the request's fields (wrong types, odd values, extra keys)."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    scalar = st.one_of(st.none(), st.booleans(), st.integers(-3, 3000), st.floats(), st.text(max_size=12))
    condition = st.dictionaries(st.sampled_from(["gt", "gte", "lt", "in", "exists", "prefix", "near"]),
                                st.one_of(scalar, st.lists(scalar, max_size=3)), max_size=2)
    body = st.fixed_dictionaries({}, optional={
        "query": st.one_of(st.text(max_size=60), scalar, st.lists(st.text(max_size=5), max_size=2)),
        "k": st.one_of(st.integers(-2, 1500), scalar),
        "mode": st.one_of(st.sampled_from(["hybrid", "dense", "sparse", "lexical"]), scalar),
        "filter": st.one_of(st.none(), scalar, st.dictionaries(st.sampled_from(["topic", "_id", "year", ""]),
                                                               st.one_of(scalar, condition), max_size=2)),
        "explain": st.one_of(st.booleans(), scalar),
        "index": st.one_of(st.just("demo"), scalar),
        "extra": scalar})

    @settings(max_examples=80, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(body)
    def check(request):
        # json.dumps as Python writes it: NaN and Infinity too, which httpx's json= refuses to send
        got = http.post("/search", content=json.dumps(request).encode(), headers=JSON)
        assert got.status_code < 500, (request, got.text)
        if got.status_code >= 400:
            assert set(got.json()) == {"error", "status"}

    check()


def test_a_chunked_body_over_the_cap_is_refused(http):
    def chunks():
        for _ in range(40):
            yield b"x" * 65536  # 2.5 MiB in all, without a Content-Length

    got = http.post("/search", content=chunks(), headers={"content-type": "application/json"})
    assert got.status_code == 413 and "over 1,048,576 bytes" in got.json()["error"]
    assert http.get("/health").status_code == 200  # and the server carries on


def test_openapi_and_the_search_page(http):
    spec = http.get("/openapi.json").json()
    assert {"/search", "/search/batch", "/documents/{doc_id}", "/indexes/{name}/documents"} <= set(spec["paths"])
    assert http.get("/docs").status_code == 200
    page = http.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'id="q"' in page.text and 'id="mode"' in page.text and 'id="filter"' in page.text


# writes ---------------------------------------------------------------------------------------------------

NEW = [{"_id": f"comet-{i}", "title": f"Comet note {i}",
        "text": f"The zyxomet comet number {i} crossed the inner solar system, its icy nucleus shedding a long tail "
                f"of dust and gas that astronomers photographed over {i + 3} nights.",
        "metadata": {"topic": "comets"}} for i in range(60)]


@pytest.fixture(scope="module")
def writable(demo_index, tmp_path_factory):
    """A copy of the demo index behind a server with writes on."""
    root = tmp_path_factory.mktemp("writable")
    shutil.copytree(demo_index.path, root / "demo")
    token_file = root / "token"
    token_file.write_text(TOKEN + "\n")
    args = ["--index", str(root / "demo"), "--allow-writes", "--token-file", str(token_file), "--quiet"]
    with ServerProcess(args, log=str(root / "server.log")) as running, \
            httpx.Client(base_url=running.url, timeout=300) as client:
        yield running, client, root / "demo"


AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_writes_need_the_token(writable):
    _, http, _ = writable
    doc = {"documents": [NEW[0]]}
    assert http.post("/indexes/demo/documents", json=doc).status_code == 401
    wrong = http.post("/indexes/demo/documents", json=doc, headers={"Authorization": "Bearer not-the-token"})
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
    assert http.delete("/indexes/demo/documents/bees", headers={"Authorization": TOKEN}).status_code == 401
    assert http.get("/documents/comet-0").status_code == 404  # nothing was written


def test_add_search_and_delete_with_the_token(writable, backbone):
    _, http, path = writable
    added = http.post("/indexes/demo/documents", json={"documents": [NEW[0]]}, headers=AUTH)
    assert added.status_code == 200, added.text
    assert added.json() == {"index": "demo", "added": 1, "replaced": 0, "documents": 38}
    assert http.get("/documents/comet-0").json()["title"] == "Comet note 0"
    reference = Retriever.load(path, backbone=backbone)  # the index on disk, as the API opens it
    for query in ("zyxomet comet tail", *QUERIES[:3]):
        assert http.post("/search", json={"query": query}).json()["hits"] == _api_hits(reference, query)
    clash = http.post("/indexes/demo/documents", json={"documents": [NEW[0]]}, headers=AUTH)
    assert clash.status_code == 400 and "already in the index" in clash.json()["error"]
    assert "\"upsert\": true" in clash.json()["error"]
    bad = http.post("/indexes/demo/documents", json={"documents": [{"_id": "x"}]}, headers=AUTH)
    assert bad.status_code == 400 and "documents:1" in bad.json()["error"]
    deleted = http.delete("/indexes/demo/documents/comet-0", headers=AUTH)
    assert deleted.status_code == 200 and deleted.json()["documents"] == 37
    assert http.get("/documents/comet-0").status_code == 404
    assert http.delete("/indexes/demo/documents/comet-0", headers=AUTH).status_code == 404


def test_searches_during_a_write_answer_from_the_old_index(writable):
    _, http, _ = writable
    before = http.post("/search", json={"query": "zyxomet comet", "mode": "lexical"}).json()["hits"]
    assert not any(h["id"].startswith("comet-") for h in before)
    done: dict = {}
    writer = threading.Thread(target=lambda: done.update(response=http.post(
        "/indexes/demo/documents", json={"documents": NEW[1:]}, headers=AUTH)))
    writer.start()
    seen_during = []
    while writer.is_alive():
        (listed,) = http.get("/indexes").json()["indexes"]
        if not listed["writing"]:
            time.sleep(0.02)
            continue
        hits = http.post("/search", json={"query": "zyxomet comet", "mode": "lexical"}).json()["hits"]
        conflict = http.delete("/indexes/demo/documents/bees", headers=AUTH)
        (still,) = http.get("/indexes").json()["indexes"]
        if still["writing"]:  # the search ran while the write was still building
            seen_during.append(hits)
            assert conflict.status_code == 409 and "being written" in conflict.json()["error"]
        time.sleep(0.1)
    writer.join()
    assert done["response"].status_code == 200 and done["response"].json()["added"] == 59
    assert seen_during, "no search landed while the write was building"
    assert all(hits == before for hits in seen_during)  # the old index, whole
    after = http.post("/search", json={"query": "zyxomet comet", "k": 100, "mode": "lexical"}).json()["hits"]
    assert {h["id"] for h in after} == {f"comet-{i}" for i in range(1, 60)}


# lifecycle ------------------------------------------------------------------------------------------------

def test_health_says_loading_then_ready_and_sigterm_finishes_in_flight_requests(demo_index, tmp_path):
    server = ServerProcess(["--index", str(demo_index.path), "--quiet"], log=str(tmp_path / "log"))
    server.start()
    statuses, early = [], None
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            got = httpx.get(server.url + "/health", timeout=5)
        except httpx.TransportError:
            time.sleep(0.05)
            continue
        statuses.append((got.status_code, got.json()["status"]))
        if got.status_code == 503 and early is None:
            early = httpx.post(server.url + "/search", json={"query": "bees"}, timeout=5)
        if got.status_code == 200:
            break
        time.sleep(0.05)
    assert statuses[0] == (503, "loading") and statuses[-1] == (200, "ready")
    assert early.status_code == 503 and "loading" in early.json()["error"]
    many = (QUERIES * 30)[:250]
    done: dict = {}

    def slow_request():
        limits = {"queries": many, "k": 50, "explain": True}
        done["response"] = httpx.post(server.url + "/search/batch", json=limits, timeout=300)

    client = threading.Thread(target=slow_request)
    client.start()
    time.sleep(0.5)  # the batch is being encoded
    server.process.send_signal(signal.SIGTERM)
    client.join(300)
    assert done["response"].status_code == 200
    assert len(done["response"].json()["results"]) == 250
    assert server.stop() in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once it has drained
    assert "Traceback" not in (tmp_path / "log").read_text()
    with pytest.raises(httpx.TransportError):
        httpx.get(server.url + "/health", timeout=2)


def test_an_index_that_fails_to_load_stops_the_server_with_its_reason(demo_index, tmp_path):
    shutil.copytree(demo_index.path, tmp_path / "damaged")
    faiss_file = tmp_path / "damaged" / "seg-000001" / "dense.faiss"
    data = bytearray(faiss_file.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size: the manifest reads fine, the checksum at loading does not
    faiss_file.write_bytes(bytes(data))
    server = ServerProcess(["--index", str(tmp_path / "damaged")], log=str(tmp_path / "log"))
    server.start()
    assert server.process.wait(120) == 1
    log = (tmp_path / "log").read_text()
    assert "cannot serve" in log and "dense.faiss" in log and "Traceback" not in log
