"""`retriever serve` refuses what it cannot serve before it binds a port or loads a model, and the service
refuses bad requests without HTTP (service.py; the server itself is tested through uvicorn in
tests/model/serve/test_serve.py)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from retriever import Retriever
from retriever.cli.main import main
from retriever.errors import RetrieverError
from retriever.serve.config import Limits, ServeConfig, index_names, read_token
from retriever.serve.service import Service, ServiceError

DOCS = [{"_id": "bees", "text": "Honey bees make honey from nectar.", "metadata": {"topic": "bees"}},
        {"_id": "lava", "text": "Lava is molten rock from a volcano.", "metadata": {"topic": "volcano"}}]


@pytest.fixture(scope="module")
def lexical(tmp_path_factory):
    """A BM25-only index: built and served without any model."""
    return Retriever.build(DOCS, tmp_path_factory.mktemp("serve") / "small", legs=("lexical",))


def _serve(*args):
    return CliRunner().invoke(main, ["serve", *args])


def test_writes_and_the_token_file_go_together(lexical, tmp_path):
    got = _serve("--index", str(lexical.path), "--allow-writes")
    assert got.exit_code == 2 and "--allow-writes and --token-file go together" in got.output
    token = tmp_path / "token"
    token.write_text("a" * 20)
    got = _serve("--index", str(lexical.path), "--token-file", str(token))
    assert got.exit_code == 2 and "go together" in got.output


@pytest.mark.parametrize("text", ["", "short", "two words here that are long enough"])
def test_a_weak_or_malformed_token_is_refused(tmp_path, text):
    path = tmp_path / "token"
    path.write_text(text)
    with pytest.raises(RetrieverError, match="at least 16 characters"):
        read_token(path)
    with pytest.raises(RetrieverError, match="cannot read the token file"):
        read_token(tmp_path / "missing")


def test_read_token_strips_the_newline(tmp_path):
    path = tmp_path / "token"
    path.write_text("0123456789abcdefXYZ\n")
    assert read_token(path) == "0123456789abcdefXYZ"


def test_index_names_are_checked_before_anything_loads(lexical, tmp_path):
    assert index_names([str(lexical.path)]) == {"small": lexical.path}
    assert index_names([f"mine={lexical.path}"]) == {"mine": lexical.path}
    with pytest.raises(RetrieverError, match="two indexes are named 'small'"):
        index_names([str(lexical.path), str(lexical.path)])
    for bad in ("a b", "../up", ".hidden", "x" * 65):
        with pytest.raises(RetrieverError, match="use letters, digits"):
            index_names([f"{bad}={lexical.path}"])
    got = _serve("--index", str(tmp_path / "nothing-here"))
    assert got.exit_code == 1 and "nothing-here" in got.output and "Traceback" not in got.output


def test_the_service_refuses_bad_requests_by_status(lexical):
    service = Service(ServeConfig({"small": lexical.path}, Limits(max_k=20, max_query_chars=50,
                                                                   max_query_tokens=5, max_batch_queries=2)))
    with pytest.raises(ServiceError) as loading:
        service.search(["honey"], index=None, k=5, mode="lexical", filter=None, explain=True)
    assert loading.value.status == 503 and service.health() == {"status": "loading"}
    service.load()
    try:
        (result,) = service.search(["honey"], index=None, k=5, mode="lexical", filter=None, explain=True)
        assert result["hits"][0]["id"] == "bees"
        cases = [((["honey"],), {"k": 21}, 400, "the limit is 20"),
                 ((["honey"],), {"mode": "dense"}, 400, "has no mode 'dense'"),
                 ((["honey"],), {"index": "other"}, 404, "no index named 'other'"),
                 ((["a", "b", "c"],), {}, 400, "3 queries in one request"),
                 ((["x" * 51],), {}, 400, "51 characters"),
                 ((["one two three four five six"],), {}, 400, "6 tokens; the limit is 5"),
                 ((["honey"],), {"filter": {"topic": {"zz": 1}}}, 400, "unknown operator"),
                 ((["honey", " "],), {}, 400, "empty query")]
        for (queries,), overrides, status, message in cases:
            kwargs = {"index": None, "k": 5, "mode": "lexical", "filter": None, "explain": False, **overrides}
            with pytest.raises(ServiceError, match=message) as refused:
                service.search(queries, **kwargs)
            assert refused.value.status == status
        with pytest.raises(ServiceError) as off:
            service.authorize("Bearer anything")
        assert off.value.status == 403
        assert service.document(None, "lava")["metadata"] == {"topic": "volcano"}
    finally:
        service.close()
