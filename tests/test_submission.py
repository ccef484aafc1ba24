import numpy as np
import pandas as pd
import pytest

from common import io
from common.submission import SubmissionFormat, align_to_sample, read_submission, validate, write

FORMAT = SubmissionFormat("sample.csv", id_column="Id", domain="positive")


def sample(n=5):
    return pd.DataFrame({"Id": [str(i) for i in range(1, n + 1)], "SalePrice": ["1.0"] * n})


def kinds(problems):
    return {p.kind for p in problems}


def test_valid_submission_has_no_problems():
    good = pd.DataFrame({"Id": ["3", "1", "2", "4", "5"], "SalePrice": [1e5, 2e5, 3e5, 4e5, 5e5]})
    assert validate(good, sample(), FORMAT) == []


def test_every_problem_kind_is_reported_together():
    bad = pd.DataFrame({
        "Id": ["1", "1", "2", "99", "4", "5"],
        "SalePrice": ["100", "200", "nan", "300", "-5", "abc"],
    })
    problems = validate(bad, sample(), FORMAT)
    assert kinds(problems) == {"row_count", "duplicate_ids", "missing_ids", "unknown_ids",
                               "non_finite", "out_of_domain", "not_a_number"}
    by_kind = {p.kind: p for p in problems}
    assert by_kind["missing_ids"].examples == ["3"]
    assert by_kind["unknown_ids"].examples == ["99"]
    assert by_kind["duplicate_ids"].examples == ["1"]
    assert "4/SalePrice=-5" in by_kind["out_of_domain"].examples[0]


def test_header_order_and_names():
    wrong_order = pd.DataFrame({"SalePrice": [1.0] * 5, "Id": [str(i) for i in range(1, 6)]})
    problems = validate(wrong_order, sample(), FORMAT)
    assert kinds(problems) == {"header"}
    assert "column 1 is 'SalePrice'" in problems[0].message
    renamed = pd.DataFrame({"Id": [str(i) for i in range(1, 6)], "price": [1.0] * 5})
    assert "missing ['SalePrice']" in validate(renamed, sample(), FORMAT)[0].message
    no_id = pd.DataFrame({"id": [str(i) for i in range(1, 6)], "SalePrice": [1.0] * 5})
    assert "missing_id_column" in kinds(validate(no_id, sample(), FORMAT))


def test_infinite_values_and_examples_are_capped_at_ten():
    n = 30
    frame = pd.DataFrame({"Id": [str(i) for i in range(1, n + 1)], "SalePrice": [np.inf] * n})
    (problem,) = validate(frame, sample(n), FORMAT)
    assert problem.kind == "non_finite" and problem.count == n and len(problem.examples) == 10
    assert "(+20 more)" in str(problem)


@pytest.mark.parametrize("domain,good,bad", [("binary", "1", "0.5"), ("probability", "0.3", "1.2")])
def test_domains(domain, good, bad):
    format = SubmissionFormat("s.csv", "Id", domain)
    frame = pd.DataFrame({"Id": ["1", "2"], "SalePrice": [good, bad]})
    problems = validate(frame, sample(2), format)
    assert [p.kind for p in problems] == ["out_of_domain"] and "2/SalePrice" in problems[0].examples[0]


def test_align_orders_rows_and_columns_as_the_sample():
    predictions = pd.DataFrame({"SalePrice": [5.0, 1.0], "Id": [2, 1]})
    aligned = align_to_sample(predictions, sample(2), FORMAT)
    assert list(aligned.columns) == ["Id", "SalePrice"] and aligned["SalePrice"].tolist() == [1.0, 5.0]


def test_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "submission.csv"
    write(pd.DataFrame({"Id": ["1"], "SalePrice": [1.5]}), path)
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_csv", crash)
    with pytest.raises(RuntimeError):
        write(pd.DataFrame({"Id": ["2"], "SalePrice": [2.5]}), path)
    assert path.read_bytes() == before                      # old file intact
    assert [p.name for p in tmp_path.iterdir()] == ["submission.csv"]  # no temp left behind
    assert read_submission(path)["SalePrice"].tolist() == ["1.5"]


def test_read_submission_keeps_text(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("Id,SalePrice\n007,NA\n")
    frame = read_submission(path)
    assert frame["Id"].tolist() == ["007"] and frame["SalePrice"].tolist() == ["NA"]
    problems = validate(frame, pd.DataFrame({"Id": ["007"], "SalePrice": ["1"]}), FORMAT)
    assert kinds(problems) == {"non_finite"}
    with pytest.raises(io.InputError, match="not found"):
        read_submission(tmp_path / "absent.csv")


# ---------------------------------------------------------------- compressed submissions

def compressed(plain, folder, kind: str, extra: dict | None = None):
    """`plain` as FILE.csv.gz or as a zip of one CSV (and `extra` members), as a user
    would make them for the platforms' uploads."""
    import gzip
    import zipfile
    if kind == "gzip":
        target = folder / f"{plain.name}.gz"
        target.write_bytes(gzip.compress(plain.read_bytes()))
    else:
        target = folder / f"{plain.stem}.zip"
        with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.write(plain, plain.name)
            for name, content in (extra or {}).items():
                archive.writestr(name, content)
    return target


@pytest.mark.parametrize("kind", ["gzip", "zip"])
def test_validate_and_score_read_a_compressed_submission_and_name_the_compression(compete, competition_data, tmp_path, kind):
    """Today such a file was diagnosed as "fields are separated by bars ('|')"."""
    small = competition_data("birdcall")
    plain = tmp_path / "submission.csv"
    plain.write_bytes((small / "SampleSubmission.csv").read_bytes())
    packed = compressed(plain, tmp_path, kind)
    result = compete("validate", "birdcall", packed, "--data", small)
    assert result.stdout == f"{packed} ({kind}): valid\n"
    scored = compete("score", "birdcall", packed, "--answers", small / "answers")
    assert scored.stdout == compete("score", "birdcall", plain, "--answers", small / "answers").stdout
    assert f"{packed} ({kind})" in scored.stderr


def test_an_invalid_compressed_submission_lists_its_problems(compete, competition_data, tmp_path):
    small = competition_data("birdcall")
    plain = tmp_path / "submission.csv"
    plain.write_text("".join((small / "SampleSubmission.csv").read_text().splitlines(keepends=True)[:-3]))
    result = compete("validate", "birdcall", compressed(plain, tmp_path, "gzip"), "--data", small, check=False)
    assert result.exit_code == 1 and "missing_ids" in result.output


@pytest.mark.parametrize("members, says", [({"readme.txt": "hi"}, "holds 2 CSVs"), ({}, "holds no CSV (notes.txt)")])
def test_a_zip_of_no_csv_or_of_several_is_one_line(compete, competition_data, tmp_path, members, says):
    import zipfile
    small = competition_data("birdcall")
    archive = tmp_path / "submission.zip"
    with zipfile.ZipFile(archive, "w") as opened:
        if members:
            opened.writestr("a.csv", (small / "SampleSubmission.csv").read_text())
            opened.writestr("b.csv", (small / "SampleSubmission.csv").read_text())
        else:
            opened.writestr("notes.txt", "no csv here")
    result = compete("validate", "birdcall", archive, "--data", small, check=False)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 1 and len(lines) == 1, result.output
    assert "a zipped submission must hold exactly one CSV" in lines[0] and says in lines[0]


def test_a_cut_gzip_submission_is_one_line(compete, competition_data, tmp_path):
    small = competition_data("birdcall")
    plain = tmp_path / "submission.csv"
    plain.write_bytes((small / "SampleSubmission.csv").read_bytes())
    packed = compressed(plain, tmp_path, "gzip")
    packed.write_bytes(packed.read_bytes()[: packed.stat().st_size // 2])
    result = compete("validate", "birdcall", packed, "--data", small, check=False)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and "cannot be decompressed" in lines[0], result.output


def test_plain_csv_is_the_file_itself_or_its_csv_decompressed(tmp_path):
    from common.submission import plain_csv
    plain = tmp_path / "preds.csv"
    plain.write_text("Id,SalePrice\n1,2\n")
    with plain_csv(plain) as path:
        assert path == plain
    for kind in ("gzip", "zip"):
        with plain_csv(compressed(plain, tmp_path, kind)) as path:
            assert path.name == "preds.csv" and path.read_bytes() == plain.read_bytes() and path != plain
        assert not path.exists()
