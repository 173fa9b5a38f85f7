"""English-German parallel corpora: local files under `<data_dir>/wmt16_en_de`, or the hub's `wmt16`.

Locally (the offline case) the corpora are Multi30k task 1 (image captions: train, val,
test_2016_flickr, gzipped), WMT newstest2015/2016 and the earlier news test sets
(`news-dev`), each a pair of line-aligned `.en`/`.de` files in UTF-8, one sentence per line (a
DataError names the file and line of an empty one). Without a data directory the hub's `wmt16`
`de-en` dataset provides train, newstest2015 and newstest2016. A corpus read from a data directory
other than the standard one is labelled by its source (`tsdtp.data_files.SourceTag`).
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from datasets import load_dataset

from tsdtp.data_files import (
    HUB,
    DataSource,
    SourceTag,
    data_dir_from_env,
    labelled,
    read_text,
    source_tag,
)
from tsdtp.errors import DataError

WMT_FOLDER = "wmt16_en_de"
"""The folder of the translation data under the data directory."""

SOURCE_LANG, TARGET_LANG = "en", "de"


@dataclass(frozen=True)
class CorpusSpec:
    """Where one corpus lives: file stems (`<stem>.<lang>[.gz]`) relative to the WMT folder."""

    name: str
    label: str
    domain: str
    stems: tuple[str, ...]
    gzipped: bool = False
    hub_split: str | None = None


NEWS_DEV_STEMS = tuple(f"dev_extra/{name}" for name in (
    "news-test2008", "newssyscomb2009", "newstest2009", "newstest2010", "newstest2011", "newstest2012",
    "newstest2013", "newstest2014"))

CORPORA: dict[str, CorpusSpec] = {spec.name: spec for spec in (
    CorpusSpec("multi30k", "multi30k train", "captions", ("multi30k_task1/train",), gzipped=True),
    CorpusSpec("multi30k-val", "multi30k val", "captions", ("multi30k_task1/val",), gzipped=True),
    CorpusSpec("multi30k-test2016", "multi30k test_2016_flickr", "captions", ("multi30k_task1/test_2016_flickr",),
               gzipped=True),
    CorpusSpec("news-dev", "news-test2008..newstest2014", "news", NEWS_DEV_STEMS),
    CorpusSpec("newstest2015", "newstest2015", "news", ("newstest/newstest2015",), hub_split="validation"),
    CorpusSpec("newstest2016", "newstest2016", "news", ("newstest/newstest2016",), hub_split="test"),
    CorpusSpec("wmt16-train", "wmt16 train", "news", (), hub_split="train"),
)}
"""Every corpus by name. `multi30k`, `news-dev` and `wmt16-train` are training corpora."""

EVAL_CORPORA: tuple[str, ...] = ("multi30k-test2016", "newstest2016")
"""The test sets reported in results.csv, one row each, labelled by domain."""


@dataclass(frozen=True)
class ParallelCorpus:
    """Aligned source (English) and target (German) sentences."""

    name: str
    label: str
    domain: str
    sources: list[str]
    targets: list[str]
    origin: SourceTag | None = None

    def __len__(self) -> int:
        return len(self.sources)

    @property
    def split_label(self) -> str:
        """The `eval_split` label of results.csv, e.g. `multi30k test_2016_flickr (captions)`, tagged with the
        data source when it is not the standard data."""
        return labelled(f"{self.label} ({self.domain})", self.origin)

    def head(self, n: int | None) -> ParallelCorpus:
        """The first `n` pairs (all of them when `n` is None)."""
        if n is None or n >= len(self):
            return self
        return ParallelCorpus(self.name, self.label, self.domain, self.sources[:n], self.targets[:n], self.origin)


def wmt_folder(data_dir: Path) -> Path:
    """`<data_dir>/wmt16_en_de`, or `data_dir` itself when it is that folder."""
    for candidate in (data_dir / WMT_FOLDER, data_dir):
        if (candidate / "multi30k_task1").is_dir() or (candidate / "newstest").is_dir():
            return candidate
    raise DataError(f"no translation data under {data_dir}: expected {data_dir / WMT_FOLDER} holding "
                    "multi30k_task1/ and newstest/")


def corpus_paths(spec: CorpusSpec, root: Path) -> list[tuple[Path, Path]]:
    """The (source, target) file pairs of a corpus under the WMT folder `root`, one pair per stem."""
    suffix = ".gz" if spec.gzipped else ""
    return [(root / f"{stem}.{SOURCE_LANG}{suffix}", root / f"{stem}.{TARGET_LANG}{suffix}") for stem in spec.stems]


def data_files(data_dir: Path, train_corpora: Iterable[str] = ()) -> list[Path]:
    """The local files translation runs read: `train_corpora`, multi30k val and the test sets `EVAL_CORPORA`.

    Only files that exist, by corpus name, each source then target file.
    """
    root = wmt_folder(data_dir)
    names = sorted({"multi30k-val", *EVAL_CORPORA, *train_corpora})
    return [path for name in names for pair in corpus_paths(CORPORA[name], root) for path in pair if path.is_file()]


def data_source(data_dir: str | os.PathLike | None, corpora: Iterable[str] = ()) -> DataSource:
    """What reading `corpora` (and the files `data_files` adds) reads: the hub, or the local files with checksums."""
    folder = data_dir_from_env(data_dir)
    if folder is None:
        return DataSource(HUB)
    return DataSource.local(folder, wmt_folder(folder), data_files(folder, corpora))


def data_tag(data_dir: str | os.PathLike | None) -> SourceTag | None:
    """How labels and eval files name the data of `data_dir`: None for the standard data, else a tag over every
    corpus file in it (`tsdtp.data_files.source_tag`)."""
    return source_tag(data_dir, lambda: data_source(data_dir, CORPORA))


def read_lines(path: Path, gzipped: bool) -> list[str]:
    """The lines of a UTF-8 text file (gzipped or not), newline characters removed; an empty line is a DataError."""
    lines = [line.rstrip("\n") for line in io.StringIO(read_text(path, "one sentence per line", gzipped), newline=None)]
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            raise DataError(f"{path}:{number}: empty line; expected one sentence per line")
    return lines


def load_corpus(name: str, data_dir: str | os.PathLike | None = None) -> ParallelCorpus:
    """Load corpus `name` from the data directory (or `TSDTP_DATA_DIR`), else from the hub."""
    spec = CORPORA.get(name)
    if spec is None:
        raise DataError(f"unknown corpus {name!r}; expected one of {', '.join(CORPORA)}")
    folder = data_dir_from_env(data_dir)
    if folder is None:
        return _load_from_hub(spec)
    if not spec.stems:
        raise DataError(f"corpus {name!r} exists only on the hub (wmt16 de-en); run without a data directory")
    root = wmt_folder(folder)
    sources: list[str] = []
    targets: list[str] = []
    for source_path, target_path in corpus_paths(spec, root):
        source, target = read_lines(source_path, spec.gzipped), read_lines(target_path, spec.gzipped)
        if len(source) != len(target):
            raise DataError(f"{source_path} has {len(source)} lines but {target_path} has {len(target)}; "
                            "expected line-aligned files")
        if not source:
            raise DataError(f"{source_path} is empty; expected one sentence per line")
        sources.extend(source)
        targets.extend(target)
    return ParallelCorpus(spec.name, spec.label, spec.domain, sources, targets, data_tag(data_dir))


def _load_from_hub(spec: CorpusSpec) -> ParallelCorpus:
    if spec.hub_split is None:
        raise DataError(f"corpus {spec.name!r} is not part of the hub's wmt16 de-en; give a data directory "
                        f"(--data-dir or TSDTP_DATA_DIR) holding {WMT_FOLDER}/")
    pairs = load_dataset("wmt16", "de-en", split=spec.hub_split)["translation"]
    return ParallelCorpus(spec.name, spec.label, spec.domain, [p[SOURCE_LANG] for p in pairs],
                          [p[TARGET_LANG] for p in pairs])
