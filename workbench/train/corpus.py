"""Offline corpus: whole documents from local files installed by ordinary package clients.

A source is data, not code: (category, kind, path). Kinds:
  "py"   every *.py file under path (recursively), skipping test dirs, site-/dist-packages, idlelib demos etc.
  "rst"  every *.txt file under path (Sphinx `_sources` reST); optional sub-directory filter per source
  "kjv"  the King James Bible read through Debian's `bible` program (bible-kjv) from the data dir `path`
         (the .data file is compressed); a directory of *.txt files is accepted too (one book per file)
A document is one file (or one Bible book). The train / held-out split is by WHOLE documents, per category,
with a seeded generator, so no held-out passage was ever seen in training (not even a neighbouring line).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import torch

from workbench.errors import WorkbenchError

# directory names whose .py files are tests, third-party or generated data rather than hand-written library code
_SKIP_DIRS = {"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__", "lib2to3",
              "encodings", "pydoc_data"}  # the last two: generated codec tables, a 700 kB dump of the docs
_KJV_RANGE = "Genesis1:1-Revelation22:21"  # the whole Bible as one verse range


@dataclass
class SourceSpec:
    category: str  # prompt/eval category the documents of this source belong to, e.g. "python-code"
    kind: str  # "py", "rst" or "kjv" (see module docstring)
    path: str  # root directory of the files (for "kjv": the directory holding bible.data, or *.txt books)
    subdirs: list[str] = field(default_factory=list)  # "rst" only: keep files whose first path part is listed
    licence: str = ""  # short licence note recorded in training_log.json and the model card
    required: bool = False  # a path the user named: missing or without documents is an error, not skipped


@dataclass
class Document:
    category: str  # copied from its SourceSpec
    name: str  # file path relative to the source root, or the Bible book name
    text: str  # full text, normalised to \n line ends


def _py_docs(spec: SourceSpec, root: Path) -> list[Document]:
    docs = []
    for p in sorted(root.rglob("*.py")):
        rel = p.relative_to(root)
        if _SKIP_DIRS & set(rel.parts[:-1]) or rel.name.startswith("test_"):
            continue
        docs.append(Document(spec.category, str(rel), p.read_text(encoding="utf-8", errors="replace")))
    return docs


def _rst_docs(spec: SourceSpec, root: Path) -> list[Document]:
    docs = []
    for p in sorted(root.rglob("*.txt")):
        rel = p.relative_to(root)
        top = rel.parts[0] if len(rel.parts) > 1 else ""  # "" = top-level file (about.rst.txt, ...)
        if spec.subdirs and top not in spec.subdirs:
            continue
        docs.append(Document(spec.category, str(rel), p.read_text(encoding="utf-8", errors="replace")))
    return docs


def _kjv_books(raw: str) -> list[tuple[str, str]]:
    """Split `bible` output ("Genesis 1" chapter headings, "  N verse" lines) into (book, text) pairs."""
    books: list[tuple[str, list[str]]] = []
    for line in raw.splitlines():
        head = re.fullmatch(r"((?:[1-3] )?[A-Z][A-Za-z ]+?) (\d+)", line.strip())
        if head and not line.startswith(" "):
            if head.group(2) == "1":  # chapter 1 opens a new book
                books.append((head.group(1), []))
            books[-1][1].append(f"\n{line.strip()}\n")
        elif books and line.strip():
            books[-1][1].append(re.sub(r"^\s*\d+ ", "", line))  # drop verse numbers, keep one verse a line
    return [(name, "\n".join(lines).strip() + "\n") for name, lines in books]


def _kjv_docs(spec: SourceSpec, root: Path) -> list[Document]:
    if list(root.glob("*.txt")):  # plain-text books (tests, or another edition): one file = one book
        return [Document(spec.category, p.stem, p.read_text(encoding="utf-8")) for p in sorted(root.glob("*.txt"))]
    exe = shutil.which("bible")
    if exe is None or not (root / "bible.data").exists():
        return []
    cmd = [exe, "-l10000", "-p", str(root), _KJV_RANGE]  # -l: no re-wrapping, one verse per line
    raw = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=60).stdout
    return [Document(spec.category, name, text) for name, text in _kjv_books(raw)]


def load_documents(sources: list[SourceSpec]) -> list[Document]:
    """All documents of all sources that exist; missing sources are skipped (a required one is an error), none at
    all is an error."""
    readers = {"py": _py_docs, "rst": _rst_docs, "kjv": _kjv_docs}
    docs: list[Document] = []
    for spec in sources:
        if spec.kind not in readers:
            raise WorkbenchError(f"unknown corpus source kind {spec.kind!r} (expected one of {sorted(readers)})")
        root = Path(spec.path)
        found = [d for d in readers[spec.kind](spec, root) if d.text.strip()] if root.is_dir() else []
        if spec.required and not found:
            where = f", sub-directories {', '.join(repr(s) for s in spec.subdirs)}" if spec.subdirs else ""
            raise WorkbenchError(f"{spec.path}: no {spec.category} documents found (kind {spec.kind!r}{where})")
        docs += found
    if not docs:
        paths = ", ".join(s.path for s in sources) or "(none given)"
        raise WorkbenchError(f"no corpus documents found in any source: {paths}")
    return docs


def split_documents(docs: list[Document], heldout_frac: float, seed: int) -> tuple[list[Document], list[Document]]:
    """Per category, hold out round(frac * n) whole documents (at least 1 when the category has >= 2)."""
    gen = torch.Generator().manual_seed(seed)
    train, heldout = [], []
    for cat in sorted({d.category for d in docs}):
        group = [d for d in docs if d.category == cat]
        order = torch.randperm(len(group), generator=gen).tolist()
        n_held = max(1, round(heldout_frac * len(group))) if len(group) >= 2 else 0
        heldout += [group[i] for i in order[:n_held]]
        train += [group[i] for i in order[n_held:]]
    return train, heldout


def corpus_stats(docs: list[Document]) -> dict[str, dict[str, int]]:
    """{category: {"documents": n, "chars": n}} for the training log."""
    stats: dict[str, dict[str, int]] = {}
    for d in docs:
        s = stats.setdefault(d.category, {"documents": 0, "chars": 0})
        s["documents"] += 1
        s["chars"] += len(d.text)
    return stats
