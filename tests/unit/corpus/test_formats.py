"""Every corpus format reads to the same documents, and a bad record is still named by file, row and field."""

from __future__ import annotations

import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from retriever import Document, Fields, InputError, read_corpus

RECORDS = [{"_id": "a", "title": "Bees", "text": "Bees make honey.", "topic": "insects"},
           {"_id": "b", "title": "", "text": "Lava erupts, \"hot\" and fast.", "topic": "earth"}]
WANT = [Document("a", "Bees make honey.", "Bees", {"topic": "insects"}),
        Document("b", 'Lava erupts, "hot" and fast.', "", {"topic": "earth"})]


def _jsonl(records) -> str:
    return "".join(json.dumps({k: v for k, v in r.items() if k != "topic"} | {"metadata": {"topic": r["topic"]}})
                   + "\n" for r in records)


def test_jsonl_gz_json_parquet_csv_tsv_read_alike(tmp_path):
    (tmp_path / "c.jsonl").write_text(_jsonl(RECORDS))
    (tmp_path / "bom.jsonl").write_bytes(b"\xef\xbb\xbf" + _jsonl(RECORDS).encode())
    with gzip.open(tmp_path / "c.jsonl.gz", "wt") as fh:
        fh.write(_jsonl(RECORDS))
    (tmp_path / "c.json").write_text(json.dumps([json.loads(line) for line in _jsonl(RECORDS).splitlines()]))
    pq.write_table(pa.Table.from_pylist(RECORDS), tmp_path / "c.parquet", row_group_size=1)
    pq.write_table(pa.Table.from_pylist(RECORDS), tmp_path / "misnamed.jsonl")
    header = "_id,title,text,topic\n"
    (tmp_path / "c.csv").write_text(header + 'a,Bees,Bees make honey.,insects\n'
                                    'b,,"Lava erupts, ""hot"" and fast.",earth\n')
    (tmp_path / "c.tsv").write_text(header.replace(",", "\t") + "a\tBees\tBees make honey.\tinsects\n"
                                    'b\t\t"Lava erupts, ""hot"" and fast."\tearth\n')
    for name in ("c.jsonl", "bom.jsonl", "c.jsonl.gz", "c.json", "c.parquet", "misnamed.jsonl", "c.csv", "c.tsv"):
        assert list(read_corpus(tmp_path / name)) == WANT, name


def test_a_folder_of_text_files_and_pyserini_fields(tmp_path):
    (tmp_path / "docs" / "sub").mkdir(parents=True)
    (tmp_path / "docs" / "one.txt").write_text("First file.")
    (tmp_path / "docs" / "sub" / "two.md").write_text("# Second\nfile")
    (tmp_path / "docs" / "skip.bin").write_bytes(b"\x00\x01")
    assert [(d.id, d.text) for d in read_corpus(tmp_path / "docs")] == [("one.txt", "First file."),
                                                                       ("sub/two.md", "# Second\nfile")]
    (tmp_path / "pyserini.jsonl").write_text('{"id": "d1", "contents": "BM25 from Lucene."}\n')
    assert list(read_corpus(tmp_path / "pyserini.jsonl")) == [Document("d1", "BM25 from Lucene.")]
    (tmp_path / "mine.csv").write_text("key,body,heading\nk1,some text,A heading\n")
    assert list(read_corpus(tmp_path / "mine.csv", Fields(id="key", text="body", title="heading"))) == \
        [Document("k1", "some text", "A heading")]
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"empty: no \.txt or \.md files"):
        list(read_corpus(tmp_path / "empty"))


def test_a_title_alone_indexes_a_document_and_nothing_at_all_is_refused(tmp_path):
    (tmp_path / "t.jsonl").write_text('{"_id": "1", "title": "Only a title", "text": null}\n'
                                      '{"_id": "2", "title": "No text field"}\n')
    assert [(d.id, d.content) for d in read_corpus(tmp_path / "t.jsonl")] == [("1", "Only a title"),
                                                                            ("2", "No text field")]
    (tmp_path / "n.jsonl").write_text('{"_id": "1", "text": "fine"}\n{"_id": "2", "text": null}\n')
    with pytest.raises(InputError, match=r"n\.jsonl:2: missing 'text' \(and no 'title'"):
        list(read_corpus(tmp_path / "n.jsonl"))


def test_bad_records_are_named_by_file_row_and_field(tmp_path):
    (tmp_path / "bad.csv").write_text("_id,text\na,fine\nb,too,many\n")
    with pytest.raises(InputError, match=r"bad\.csv:3: expected 2 columns"):
        list(read_corpus(tmp_path / "bad.csv"))
    (tmp_path / "nid.csv").write_text("_id,text\n,no id here\n")
    with pytest.raises(InputError, match=r"nid\.csv:2: empty document id"):
        list(read_corpus(tmp_path / "nid.csv"))
    pq.write_table(pa.Table.from_pylist([{"_id": "a", "text": "x"}, {"_id": "a", "text": "y"}]),
                   tmp_path / "dup.parquet")
    with pytest.raises(InputError, match=r"dup\.parquet:2: duplicate id 'a'"):
        list(read_corpus(tmp_path / "dup.parquet"))
    (tmp_path / "arr.json").write_text('[{"_id": "a", "text": "x"}, {"_id": 3.5, "text": "y"}]')
    with pytest.raises(InputError, match=r"arr\.json:2: id must be a string or an integer"):
        list(read_corpus(tmp_path / "arr.json"))
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 and then nothing")
    with pytest.raises(InputError, match=r"broken\.parquet: cannot read as Parquet"):
        list(read_corpus(tmp_path / "broken.parquet"))
