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
