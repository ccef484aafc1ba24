import os
import zipfile

import pytest

from common import io


def test_read_csv_tolerates_bom_crlf_and_quotes(tmp_path):
    path = tmp_path / "train.csv"
    path.write_bytes(b'\xef\xbb\xbfId,Name\r\n1,"Smith, John"\r\n2,"say ""hi"""\r\n')
    frame = io.read_csv(path)
    assert list(frame.columns) == ["Id", "Name"]
    assert frame["Name"].tolist() == ["Smith, John", 'say "hi"']


def test_find_reads_loose_any_case_nested_and_zipped(tmp_path):
    (tmp_path / "Train.CSV").write_text("a\n1\n")
    assert io.find(tmp_path, "train.csv").path.name == "Train.CSV"
    nested = tmp_path / "unzipped"
    nested.mkdir()
    (nested / "test.csv").write_text("a\n2\n")
    assert io.read_csv(io.find(tmp_path, "test.csv"))["a"].tolist() == [2]
    with zipfile.ZipFile(tmp_path / "download.zip", "w") as archive:
        archive.writestr("folder/sample_submission.csv", "\ufeffId,SalePrice\r\n1,2\r\n")
    source = io.find(tmp_path, "sample_submission.csv")
    assert source.member == "folder/sample_submission.csv"
    assert io.read_csv(source)["SalePrice"].tolist() == [2]
    with pytest.raises(io.InputError, match="absent.csv not found"):
        io.find(tmp_path, "absent.csv")
    assert io.find(tmp_path, "absent.csv", required=False) is None


def test_parse_errors_name_the_file(tmp_path):
    path = tmp_path / "broken.csv"
    path.write_text('a,b\n1,"unterminated\n')
    with pytest.raises(io.InputError, match="broken.csv"):
        io.read_csv(path)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(io.InputError, match="empty.csv: file is empty"):
        io.read_csv(empty)


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.bin"
    with pytest.raises(ZeroDivisionError):
        with io.atomic_path(target) as temporary:
            temporary.write_bytes(b"half")
            1 / 0
    assert list(tmp_path.iterdir()) == []


def test_atomic_folder_replaces_a_folder_whole_or_not_at_all(tmp_path):
    target = tmp_path / "package"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(ZeroDivisionError):
        with io.atomic_folder(target) as building:
            (building / "new.txt").write_text("half")
            1 / 0
    assert [path.name for path in tmp_path.iterdir()] == ["package"]
    assert [path.name for path in target.iterdir()] == ["old.txt"]
    with io.atomic_folder(target) as building:
        (building / "sub").mkdir()
        (building / "sub" / "weights.bin").write_bytes(b"w")
        (building / "sub" / "weights.bin").chmod(0o600)   # as save_pretrained leaves its weights
    assert [path.name for path in tmp_path.iterdir()] == ["package"]
    assert sorted(path.relative_to(target).as_posix() for path in target.rglob("*")) == ["sub", "sub/weights.bin"]
    umask = os.umask(0)
    os.umask(umask)
    assert (target.stat().st_mode & 0o777) == 0o777 & ~umask
    assert ((target / "sub" / "weights.bin").stat().st_mode & 0o777) == 0o666 & ~umask


def test_safe_extract_refuses_path_escape(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as opened:
        opened.writestr("ok.txt", "fine")
        opened.writestr("../escape.txt", "bad")
    with pytest.raises(io.InputError, match="escapes"):
        io.safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "out" / "ok.txt").exists()


def test_cache_dir_and_hash(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPETE_CACHE", str(tmp_path / "cache"))
    assert io.cache_dir("a", "b") == tmp_path / "cache" / "a" / "b"
    one, two = tmp_path / "1.txt", tmp_path / "2.txt"
    one.write_text("x")
    two.write_text("y")
    key = io.hash_files([one, two])
    assert key == io.hash_files([two, one])
    two.write_text("z")
    assert key != io.hash_files([one, two])


def test_atomic_writes_get_the_usual_file_mode(tmp_path):
    import os
    umask = os.umask(0o022)
    try:
        path = io.write_text(tmp_path / "submission.csv", "Id\n1\n")
    finally:
        os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o644
