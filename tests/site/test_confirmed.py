"""The site's list of contents it saw complete in the bucket itself, across restarts."""

from __future__ import annotations

from pathlib import Path

from meridian.site.confirmed import ConfirmedLog

A, B, C = "a" * 64, "b" * 64, "c" * 64


def test_lines_survive_a_restart_while_still_relevant(tmp_path: Path) -> None:
    path = tmp_path / "confirmed-in-bucket"
    log = ConfirmedLog(path)
    assert log.load(lambda h: True) == set()  # no file yet
    log.add([A, B])
    log.add([C])
    assert ConfirmedLog(path).load(lambda h: h != B) == {A, C}
    assert path.read_text() == f"{A}\n{C}\n"  # rewritten with what is kept


def test_a_struck_out_hash_no_longer_counts_until_seen_again(tmp_path: Path) -> None:
    path = tmp_path / "confirmed-in-bucket"
    log = ConfirmedLog(path)
    log.add([A, B])
    log.strike(A)
    assert ConfirmedLog(path).load(lambda h: True) == {B}
    log.add([A])  # seen in the bucket again later
    assert ConfirmedLog(path).load(lambda h: True) == {A, B}


def test_a_torn_or_garbled_file_only_costs_checks(tmp_path: Path) -> None:
    path = tmp_path / "confirmed-in-bucket"
    path.write_bytes(f"{A}\n{B[:30]}\n\xff\xfe junk\n-zz\n".encode("latin-1"))
    assert ConfirmedLog(path).load(lambda h: True) == {A}
    folder = tmp_path / "a-folder"
    folder.mkdir()
    assert ConfirmedLog(folder).load(lambda h: True) == set()  # unreadable: nothing counts
