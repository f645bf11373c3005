import os
import stat

import pytest

from fusionlab.io import atomic_write


def test_atomic_write_replaces_or_keeps(tmp_path):
    target = tmp_path / "sub" / "file.txt"
    with atomic_write(target, "w") as f:
        f.write("first")
    assert target.read_text() == "first"
    with pytest.raises(RuntimeError):
        with atomic_write(target, "w") as f:
            f.write("half")
            raise RuntimeError("crash while writing")
    assert target.read_text() == "first"  # the old content survives a failed write
    assert list(target.parent.iterdir()) == [target]  # and no temporary file is left


def mode_of(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_new_file_gets_the_umask_mode(tmp_path, umask):
    old = os.umask(umask)
    try:
        with atomic_write(tmp_path / "new.bin") as f:
            f.write(b"x")
        open(tmp_path / "plain.bin", "wb").close()  # what an ordinary open gives
    finally:
        os.umask(old)
    assert mode_of(tmp_path / "new.bin") == 0o666 & ~umask
    assert mode_of(tmp_path / "new.bin") == mode_of(tmp_path / "plain.bin")


def test_replaced_file_keeps_its_mode(tmp_path):
    target = tmp_path / "shared.json"
    target.write_text("old")
    os.chmod(target, 0o640)
    with atomic_write(target, "w") as f:
        f.write("new")
    assert target.read_text() == "new" and mode_of(target) == 0o640


def test_folder_and_bad_mode_fail_before_writing(tmp_path):
    with pytest.raises(IsADirectoryError, match="folder"):
        with atomic_write(tmp_path, "w") as f:
            f.write("never")
    with pytest.raises(ValueError, match="'a'"):
        with atomic_write(tmp_path / "x", "a"):
            pass
    assert list(tmp_path.iterdir()) == []
