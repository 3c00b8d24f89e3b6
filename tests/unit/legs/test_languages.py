"""The BM25 leg in the corpus's language (--language): its Snowball stemmer folds a plural into its
singular, its stopword list drops the words that carry no topic, the choice is stored in the manifest and
searched with; a script without spaces between words is refused before anything is built."""

from __future__ import annotations

import json

import pytest
import Stemmer
from click.testing import CliRunner

from retriever import InputError, Retriever
from retriever.cli.main import main
from retriever.legs.lexical.config import LANGUAGES, LexicalConfig

from ...conftest import write_jsonl

CORPORA = {  # language -> (documents, a plural query its singular document answers, a stopword)
    "french": ([{"_id": "cheval", "text": "Le cheval galope dans le pré."},
                {"_id": "maison", "text": "Une maison ancienne près de la rivière."},
                {"_id": "chat", "text": "Un chat dort sur le canapé."}], "chevaux maisons", "le"),
    "german": ([{"_id": "haus", "text": "Das Haus steht am Fluss."},
                {"_id": "kind", "text": "Ein Kind spielt im Garten."},
                {"_id": "buch", "text": "Das Buch liegt auf dem Tisch."}], "Kinder Bücher", "das"),
    "russian": ([{"_id": "kniga", "text": "Книга лежит на столе."},
                 {"_id": "gorod", "text": "Этот город стоит на реке."},
                 {"_id": "koshka", "text": "Кошка спит на диване."}], "книги кошки", "на"),
}


CHINESE = "蜜蜂会酿造蜂蜜。它们生活在蜂巢里。"


def _build(tmp_path, language: str, docs: list[dict]) -> Retriever:
    corpus = write_jsonl(tmp_path / f"{language}.jsonl", docs)
    result = CliRunner().invoke(main, ["index", str(corpus), "--index", str(tmp_path / language), "--legs", "lexical",
                                       "--language", language, "--quiet"])
    assert result.exit_code == 0, result.output
    return Retriever.load(tmp_path / language)


def test_the_languages_are_the_stemmers_pystemmer_ships():
    assert set(LANGUAGES) - {"none"} == set(Stemmer.algorithms())


@pytest.mark.parametrize("language", sorted(CORPORA))
def test_a_plural_matches_its_singular_and_a_stopword_matches_nothing(tmp_path, language):
    docs, plural_query, stopword = CORPORA[language]
    r = _build(tmp_path, language, docs)
    settings = json.loads((tmp_path / language / "manifest.json").read_text())["settings"]
    assert settings["lexical"]["language"] == language and settings["lexical"]["stemmer"] == language
    found = {h.id for h in r.search(plural_query, k=3, mode="lexical")}
    singulars = {"french": {"cheval", "maison"}, "german": {"kind", "buch"}, "russian": {"kniga", "koshka"}}
    assert found == singulars[language]
    assert r.search(stopword, k=3, mode="lexical") == []
    english = Retriever.build(tmp_path / f"{language}.jsonl", tmp_path / f"{language}-en", legs=("lexical",))
    assert {h.id for h in english.search(plural_query, k=3, mode="lexical")} != singulars[language]


def test_none_neither_stems_nor_drops_stopwords(tmp_path):
    r = Retriever.build([{"_id": "a", "text": "the running dogs"}, {"_id": "b", "text": "a dog runs"}],
                        tmp_path / "none", legs=("lexical",), lexical=LexicalConfig(language="none"))
    assert [h.id for h in r.search("dogs", mode="lexical")] == ["a"]
    assert [h.id for h in r.search("the", mode="lexical")] == ["a"]
    assert LexicalConfig(language="none").stopwords == "" and LexicalConfig(language="finnish").stopwords == ""


def test_a_corpus_without_spaces_between_words_is_refused_before_anything_is_built(tmp_path):
    corpus = write_jsonl(tmp_path / "zh.jsonl", [{"_id": "1", "text": "The index handles English."},
                                                 {"_id": "2", "text": "这是一个没有空格的中文句子，蜜蜂会酿造蜂蜜。"}])
    result = CliRunner().invoke(main, ["index", str(corpus), "--index", str(tmp_path / "zh"), "--legs", "lexical"])
    assert result.exit_code == 1 and "document '2'" in result.output and "without spaces" in result.output
    assert "--legs dense,sparse" in result.output and not (tmp_path / "zh").exists()
    with pytest.raises(InputError, match="without spaces between words"):
        Retriever.build([{"_id": "x", "text": CHINESE}], tmp_path / "api", legs=("lexical",))
    r = Retriever.build([{"_id": "a", "text": "bees make honey"}], tmp_path / "en", legs=("lexical",))
    with pytest.raises(InputError, match="without spaces"):
        r.add([{"_id": "b", "text": CHINESE}])
    assert LexicalConfig().refuse("Tokyo (東京) is Japan's capital, a city of 14 million people.") is None


def test_an_unknown_language_is_refused_by_name():
    result = CliRunner().invoke(main, ["index", "x.jsonl", "--legs", "lexical", "--language", "klingon"])
    assert result.exit_code == 2 and "klingon" in result.output
    with pytest.raises(Exception, match="unknown language 'klingon'"):
        LexicalConfig(language="klingon")
