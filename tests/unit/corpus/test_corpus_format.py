"""A new corpus format is one Reader registered from outside: `retriever index` reads it, its documents are
validated like any other (an error names the file and line), and Ray reads it by the splits it declares."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from retriever import InputError, Retriever
from retriever.cli import main
from retriever.corpus.documents import Document, Fields, as_record, parse_document
from retriever.corpus.readers import Reader, Split, read_corpus, register_reader, unregister_reader
from retriever.indexing.ray import CorpusSource, check_source


class PipeSeparated(Reader):
    """id|title|text, one document a line; Ray reads it in halves, by line number."""

    name, label = "psv", "pipe-separated lines"

    def records(self, path: Path):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            doc_id, title, text = [*line.split("|", 2), "", ""][:3]
            yield path, number, {"_id": doc_id, "title": title, "text": text}

    def splits(self, path: Path) -> list[Split]:
        lines = len(path.read_text(encoding="utf-8").splitlines())
        return [Split(0, lines // 2), Split(lines // 2, None)]

    def read_split(self, path: Path, split: Split, fields: Fields) -> Iterator[Document]:
        for _, number, record in self.records(path):
            if split.start < number <= (split.end if split.end is not None else number):
                yield parse_document(as_record(record, fields, False), str(path), number)


@pytest.fixture
def psv(tmp_path):
    register_reader(PipeSeparated())
    path = tmp_path / "corpus.psv"
    path.write_text("bees|How bees make honey|Bees turn nectar into honey.\n"
                    "tides|Ocean tides|The moon pulls the oceans.\n"
                    "lava|Volcanoes|Lava is molten rock.\n", encoding="utf-8")
    yield path
    unregister_reader("psv")


def test_the_cli_builds_an_index_from_the_new_format(psv, tmp_path):
    result = CliRunner().invoke(main, ["index", str(psv), "--index", str(tmp_path / "idx"), "--legs", "lexical",
                                       "--quiet"])
    assert result.exit_code == 0, result.output
    assert Retriever.load(tmp_path / "idx").search("honey", k=1, mode="lexical")[0].id == "bees"


def test_its_records_are_validated_like_every_format(psv):
    psv.write_text(psv.read_text() + "bees|again|a duplicate id\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"corpus.psv:4: duplicate id 'bees'"):
        list(read_corpus(psv))


def test_ray_reads_it_by_its_splits(psv):
    check_source(str(psv))  # accepted: the reader declares splits
    source = CorpusSource(str(psv), Fields())
    tasks = source.get_read_tasks(1)
    assert len(tasks) == 2
    ids = [doc_id for task in tasks for block in task() for doc_id in block.column("id").to_pylist()]
    assert ids == [d.id for d in read_corpus(psv)]
