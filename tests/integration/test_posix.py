"""What studio tools do to a file system, through a real FUSE mount of a running site."""

from __future__ import annotations

import errno
import json
import os
import stat
import time
from pathlib import Path

import pytest

from tests.sitehelpers import RunningSite, meridian


def wait_for(predicate, timeout: float = 15.0, interval: float = 0.05) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def test_five_megabytes_round_trip_and_reach_the_bucket(site: RunningSite) -> None:
    data = os.urandom(5 * 1024 * 1024 + 123)
    target = site.mount / "shot010" / "plate.exr"
    target.parent.mkdir()
    target.write_bytes(data)
    assert target.read_bytes() == data
    assert target.stat().st_size == len(data)

    def uploaded() -> bool:
        rows = json.loads(meridian("ls", "--placement", "--json", "--config", str(site.config),
                                   "./shot010").stdout)
        return rows[0]["state"] == "both"

    assert wait_for(uploaded), site.log()


def test_write_at_offsets_truncate_and_append(site: RunningSite) -> None:
    path = site.mount / "f.bin"
    with open(path, "wb") as f:
        f.write(b"a" * 100)
        f.seek(50)
        f.write(b"B" * 10)
    assert path.read_bytes() == b"a" * 50 + b"B" * 10 + b"a" * 40
    with open(path, "r+b") as f:  # modify in place: the rest must be kept
        f.seek(0)
        f.write(b"Z")
    assert path.read_bytes()[:2] == b"Za" and path.stat().st_size == 100
    os.truncate(path, 10)
    assert path.read_bytes() == b"Z" + b"a" * 9
    with open(path, "ab") as f:
        f.write(b"end")
    assert path.read_bytes() == b"Z" + b"a" * 9 + b"end"
    os.truncate(path, 20)
    assert path.read_bytes() == b"Z" + b"a" * 9 + b"end" + b"\0" * 7
    with open(path, "wb"):
        pass
    assert path.read_bytes() == b""


def test_read_back_before_close_sees_own_writes(site: RunningSite) -> None:
    path = site.mount / "live.txt"
    with open(path, "w+b") as f:
        f.write(b"hello")
        f.flush()
        f.seek(0)
        assert f.read() == b"hello"
        with open(path, "rb") as other:
            assert other.read() == b"hello"


def test_rename_over_existing_unlink_and_directories(site: RunningSite) -> None:
    m = site.mount
    (m / "a").write_text("new")
    (m / "b").write_text("old")
    os.rename(m / "a", m / "b")  # the editors' temp-file-then-rename
    assert (m / "b").read_text() == "new" and not (m / "a").exists()
    (m / "d1" / "d2").mkdir(parents=True)
    os.rename(m / "b", m / "d1" / "d2" / "c")
    assert (m / "d1" / "d2" / "c").read_text() == "new"
    with pytest.raises(OSError) as exc:
        os.rmdir(m / "d1")
    assert exc.value.errno == errno.ENOTEMPTY
    with pytest.raises(OSError) as exc:
        os.rename(m / "d1", m / "d1" / "d2" / "inside")
    assert exc.value.errno == errno.EINVAL
    os.unlink(m / "d1" / "d2" / "c")
    os.rmdir(m / "d1" / "d2")
    os.rmdir(m / "d1")
    assert sorted(os.listdir(m)) == []
    with pytest.raises(FileNotFoundError):
        os.stat(m / "d1")


def test_symlinks_hard_links_and_modes(site: RunningSite) -> None:
    m = site.mount
    (m / "plate.exr").write_bytes(b"pixels")
    os.symlink("plate.exr", m / "latest")
    assert os.readlink(m / "latest") == "plate.exr"
    assert (m / "latest").read_bytes() == b"pixels"
    os.link(m / "plate.exr", m / "hard")
    assert os.stat(m / "hard").st_ino == os.stat(m / "plate.exr").st_ino
    assert os.stat(m / "hard").st_nlink == 2
    os.unlink(m / "plate.exr")
    assert (m / "hard").read_bytes() == b"pixels" and os.stat(m / "hard").st_nlink == 1
    os.chmod(m / "hard", 0o600)
    assert stat.S_IMODE(os.stat(m / "hard").st_mode) == 0o600
    os.chown(m / "hard", 1234, 5678)
    st = os.stat(m / "hard")
    assert (st.st_uid, st.st_gid) == (1234, 5678)
    os.utime(m / "hard", ns=(1_600_000_000_000_000_000, 1_500_000_000_000_000_000))
    assert os.stat(m / "hard").st_mtime_ns == 1_500_000_000_000_000_000
    with pytest.raises(OSError) as exc:
        os.link(m, m / "dirlink")
    assert exc.value.errno in (errno.EPERM, errno.EISDIR)


def test_a_name_that_is_not_utf8_is_a_name_like_any_other(site: RunningSite) -> None:
    """Files from old tools and other systems may carry Latin-1 or broken names: any bytes
    but "/" and NUL. Such a file is made, listed, hard-linked, renamed and removed."""
    m = os.fsencode(site.mount)
    odd = m + b"/take\xe9\xff.dpx"
    with open(odd, "wb") as f:
        f.write(b"frame")
    assert b"take\xe9\xff.dpx" in os.listdir(m)
    os.link(odd, odd + b".link")
    os.rename(odd, m + b"/\x80renamed")
    with open(m + b"/\x80renamed", "rb") as f:
        assert f.read() == b"frame"
    os.unlink(odd + b".link")
    os.unlink(m + b"/\x80renamed")
    assert not [n for n in os.listdir(m) if n.startswith((b"take", b"\x80"))]


def test_extended_attributes(site: RunningSite) -> None:
    path = site.mount / "x"
    path.write_text("x")
    os.setxattr(path, "user.meridian.test", b"\x00value")
    assert os.getxattr(path, "user.meridian.test") == b"\x00value"
    assert "user.meridian.test" in os.listxattr(path)
    os.removexattr(path, "user.meridian.test")
    with pytest.raises(OSError) as exc:
        os.getxattr(path, "user.meridian.test")
    assert exc.value.errno == errno.ENODATA


def test_an_attribute_name_that_is_not_utf8(site: RunningSite) -> None:
    """Attribute names are bytes too; one that is not UTF-8 is set, listed, read and removed
    through the mount like any other."""
    path = os.fsencode(site.mount / "attrs")
    with open(path, "wb") as f:
        f.write(b"x")
    os.setxattr(path, b"user.take\xe9\xff", b"v")
    assert os.getxattr(path, b"user.take\xe9\xff") == b"v"
    assert os.fsdecode(b"user.take\xe9\xff") in os.listxattr(path)
    os.removexattr(path, b"user.take\xe9\xff")
    assert os.listxattr(path) == []


def test_errors_map_to_the_right_errno(site: RunningSite) -> None:
    m = site.mount
    (m / "file").write_text("x")
    (m / "dir").mkdir()
    cases = [
        (lambda: os.mkdir(m / "dir"), errno.EEXIST),
        (lambda: os.rmdir(m / "file"), errno.ENOTDIR),
        (lambda: os.unlink(m / "dir"), errno.EISDIR),
        (lambda: open(m / "nothing"), errno.ENOENT),
        (lambda: os.rename(m / "dir", m / "file"), errno.ENOTDIR),
        (lambda: os.rename(m / "file", m / "dir"), errno.EISDIR),
        (lambda: open(m / ("n" * 256), "w"), errno.ENAMETOOLONG),
    ]
    for action, expected in cases:
        with pytest.raises(OSError) as exc:
            action()
        assert exc.value.errno == expected, (action, exc.value)


def test_thousands_of_entries_and_statfs(site: RunningSite) -> None:
    d = site.mount / "seq"
    d.mkdir()
    for i in range(2000):
        (d / f"frame.{i:04d}.exr").touch()
    names = os.listdir(d)
    assert len(names) == 2000 and len(set(names)) == 2000
    import subprocess
    listing = subprocess.run(["ls", "-a", str(d)], capture_output=True, text=True).stdout.split()
    assert listing[:2] == [".", ".."] and len(listing) == 2002
    vfs = os.statvfs(site.mount)
    assert vfs.f_bsize > 0 and vfs.f_blocks > 0 and vfs.f_namemax == 255


def test_large_sparse_file_beyond_4_gib(file_site: RunningSite) -> None:
    """File bucket only: moto keeps objects in memory, and 5 GiB of zeros would fill it."""
    path = file_site.mount / "big.sparse"
    offset = 5 * 1024**3
    with open(path, "wb") as f:
        f.seek(offset)
        f.write(b"tail")
    assert path.stat().st_size == offset + 4
    with open(path, "rb") as f:
        f.seek(offset - 4)
        assert f.read(8) == b"\0\0\0\0tail"


def test_site_json_names_the_site(site: RunningSite) -> None:
    info = json.loads((site.mount / ".meridian" / "site.json").read_text())
    assert info["site"] == "solo" and info["config"] == str(site.config)
    assert "secret" not in json.dumps(info).lower()
    with pytest.raises(OSError) as exc:
        (site.mount / ".meridian" / "site.json").write_text("{}")
    assert exc.value.errno == errno.EROFS
    assert ".meridian" not in os.listdir(site.mount)  # found by name, not listed
    assert "site.json" in os.listdir(site.mount / ".meridian")
    for change in (lambda: os.unlink(site.mount / ".meridian" / "site.json"),
                   lambda: os.chmod(site.mount / ".meridian" / "site.json", 0o666)):
        with pytest.raises(OSError) as exc:
            change()
        assert exc.value.errno == errno.EROFS  # the mount's answer, not a file to change


def test_times_set_while_open_survive_close(site: RunningSite, tmp_path: Path) -> None:
    """cp -p and tar set mtime on the open descriptor before close commits the content."""
    src = tmp_path / "src.exr"
    src.write_bytes(b"frame" * 1000)
    os.utime(src, ns=(1_400_000_000_000_000_000, 1_400_000_000_000_000_000))
    import subprocess
    subprocess.run(["cp", "-p", str(src), str(site.mount / "copy.exr")], check=True)
    assert os.stat(site.mount / "copy.exr").st_mtime_ns == 1_400_000_000_000_000_000
    before = time.time_ns()
    with open(site.mount / "copy.exr", "ab") as f:
        f.write(b"more")
        f.flush()
        assert os.fstat(f.fileno()).st_mtime_ns >= before - 10_000_000  # a write moves mtime
    assert os.stat(site.mount / "copy.exr").st_mtime_ns >= before - 10_000_000


def test_permissions_are_enforced_for_other_users() -> None:
    """Mounted with allow_other and default_permissions: artists' own accounts use it, and
    the kernel checks modes and owners as on a local disk. (The mount lives in a folder other
    users can traverse; pytest's own tmp folders are private to root.)"""
    import shutil
    import subprocess
    import tempfile

    from tests.sitehelpers import init_site

    root = Path(tempfile.mkdtemp(prefix="meridian-perm-"))
    os.chmod(root, 0o755)
    site = init_site(root, "solo", f"file://{root}/bucket")
    site.start()
    try:
        m = site.mount
        os.chmod(m, 0o755)
        (m / "private").write_text("root only")
        os.chmod(m / "private", 0o600)
        (m / "shared").mkdir()
        os.chmod(m / "shared", 0o777)
        as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        listing = subprocess.run([*as_nobody, "ls", str(m)], capture_output=True, text=True)
        assert listing.returncode == 0 and "private" in listing.stdout, listing.stderr
        denied = subprocess.run([*as_nobody, "cat", str(m / "private")],
                                capture_output=True, text=True)
        assert denied.returncode != 0 and "Permission denied" in denied.stderr
        created = subprocess.run([*as_nobody, "sh", "-c", f"echo hi > {m}/shared/mine"],
                                 capture_output=True, text=True)
        assert created.returncode == 0, created.stderr
        st = os.stat(m / "shared" / "mine")
        assert (st.st_uid, st.st_gid) == (65534, 65534)
        assert (m / "shared" / "mine").read_text() == "hi\n"
    finally:
        site.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_fifos_sockets_and_device_nodes(site: RunningSite) -> None:
    m = site.mount
    os.mkfifo(m / "pipe")
    os.mknod(m / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    os.mknod(m / "sock", 0o600 | stat.S_IFSOCK)
    assert stat.S_ISFIFO(os.stat(m / "pipe").st_mode)
    assert stat.S_ISSOCK(os.stat(m / "sock").st_mode)
    dev = os.stat(m / "null")
    assert stat.S_ISCHR(dev.st_mode) and os.major(dev.st_rdev) == 1 and os.minor(dev.st_rdev) == 3
    import threading
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append((m / "pipe").read_bytes()))
    reader.start()
    (m / "pipe").write_bytes(b"through the pipe")  # the kernel's pipe, named in our tree
    reader.join(10)
    assert got == [b"through the pipe"]
    for name in ("pipe", "null", "sock"):
        os.unlink(m / name)


def test_an_unlinked_open_file_stays_usable_until_closed(site: RunningSite) -> None:
    path = site.mount / "scratch.tmp"
    path.write_bytes(b"before")
    with open(path, "r+b") as f:
        os.unlink(path)
        assert not path.exists()
        f.seek(0, 2)
        f.write(b" and after")
        f.flush()
        os.fsync(f.fileno())
        f.seek(0)
        assert f.read() == b"before and after"
        assert os.fstat(f.fileno()).st_nlink == 0
    assert sorted(os.listdir(site.mount)) == []


def test_set_group_id_directories_pass_their_group_on(site: RunningSite) -> None:
    shared = site.mount / "project"
    shared.mkdir()
    os.chown(shared, 0, 4242)
    os.chmod(shared, 0o2775)
    (shared / "plate.exr").write_bytes(b"x")
    (shared / "renders").mkdir()
    assert os.stat(shared / "plate.exr").st_gid == 4242
    sub = os.stat(shared / "renders")
    assert sub.st_gid == 4242 and sub.st_mode & stat.S_ISGID
    old = os.umask(0o022)
    try:
        fd = os.open(site.mount / "masked", os.O_CREAT | os.O_WRONLY, 0o666)
        os.close(fd)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(site.mount / "masked").st_mode) == 0o644


def test_the_kernels_writeback_cache_when_a_site_asks_for_it(tmp_path: Path) -> None:
    from tests.sitehelpers import init_site

    site = init_site(tmp_path, "wb", f"file://{tmp_path}/bucket")
    config = site.config.read_text()
    site.config.write_text(config.replace("[site]\n", "[site]\nwriteback_cache = true\n", 1))
    site.start()
    try:  # logged once the mount answers, a moment after it appears
        assert wait_for(lambda: "kernel writeback cache on" in site.log()), site.log()
        data = os.urandom(3 * 1024 * 1024 + 7)
        (site.mount / "a").write_bytes(data)
        assert (site.mount / "a").read_bytes() == data and (site.mount / "a").stat().st_size == len(data)
        (site.mount / "b").write_bytes(b"old")
        os.rename(site.mount / "a", site.mount / "b")  # over an existing name
        assert (site.mount / "b").read_bytes() == data and not (site.mount / "a").exists()
        with open(site.mount / "b", "r+b") as f:
            f.seek(10)
            f.write(b"XY")
        assert (site.mount / "b").read_bytes() == data[:10] + b"XY" + data[12:]
        os.unlink(site.mount / "b")
        assert os.listdir(site.mount) == []
    finally:
        site.stop()
    site.config.write_text(config)  # the default: write-through
    site.start()
    try:
        assert wait_for(lambda: "kernel writeback cache off" in site.log()), site.log()
    finally:
        site.stop()
