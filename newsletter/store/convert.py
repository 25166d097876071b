"""Reading a store written by the first release, and converting it on first open.

That release kept everything in one TinyDB file: every paper in full, beside
the cycles, deliveries and the inbox's tables. Converting moves the papers to
the working-set file (all of them, in full: the next cycle decides which stay,
after it has written the archive, so rotation loses nothing) and marks the
state file with its format. The old file is kept, hard-linked, as NAME.bak
before anything is written, and the state file is replaced last, so a kill at
any moment leaves either the old store (converted again at the next open) or
the converted one.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Any

from ..crashpoints import crashpoint
from ..files import fsync_dir, write_atomic
from .engine import StoreError, write_tables

log = logging.getLogger(__name__)

FORMAT = 2  # the store's layout: 1 = one file (first release), 2 = working set + seen ids

Tables = dict[str, Any]


def format_of(path: Path, data: Tables) -> int:
    """The layout a state file was written in; StoreError for one newer than this release."""
    meta = data.get("meta")
    if not meta:
        return 1
    found = next((doc.get("format") for doc in meta.values() if isinstance(doc, dict)), None)
    if not isinstance(found, int) or found > FORMAT:
        raise StoreError(
            f"{path}: written by a newer release (store format {found!r}, this release reads "
            f"{FORMAT} and older); upgrade, or restore the file from before"
        )
    return found


def new_state() -> Tables:
    return {"meta": {"1": {"format": FORMAT}}}


def split_first_release(data: Tables) -> tuple[Tables, Tables]:
    """(state tables, working-set tables) from the first release's single file."""
    state = {name: table for name, table in data.items() if name != "papers"}
    state["cycles"] = {
        doc_id: doc | {"key": str(doc["number"])} for doc_id, doc in data.get("cycles", {}).items()
    }
    # Outbox replies were known by TinyDB's document id; now by a key that sorts by age.
    state["outbox"] = {
        doc_id: doc | {"key": f"{int(doc_id):020d}"}
        for doc_id, doc in data.get("outbox", {}).items()
    }
    return state | new_state(), {"papers": data.get("papers", {})}


def backup_path(path: Path) -> Path:
    return path.with_name(path.name + ".bak")


def convert(path: Path, data: Tables, papers_path: Path) -> tuple[Tables, Tables]:
    """Convert the first release's file on disk; returns what `split_first_release` does."""
    state, papers = split_first_release(data)
    backup = backup_path(path)
    with contextlib.suppress(FileNotFoundError):
        backup.unlink()  # left by a conversion that was killed: `path` is the truth
    try:
        os.link(path, backup)
    except OSError:  # a file system without hard links: copy
        write_atomic(backup, path.read_bytes(), name="backup")
    fsync_dir(path.parent)
    crashpoint("convert-after-backup")
    write_tables(papers_path, papers, "papers")
    crashpoint("convert-after-papers")
    write_tables(path, state, "state")
    log.warning(
        "%s: converted to the working-set store (%d papers); the old file is kept as %s "
        "until you delete it",
        path,
        len(papers["papers"]),
        backup,
    )
    return state, papers
