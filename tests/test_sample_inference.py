"""Sample-submission format inference on hand-made folders: long, wide, odd names,
string ids, and a sample whose ids are not the test's."""
from __future__ import annotations

import zipfile
from pathlib import Path

import pandas as pd
import pytest

from common import io
from common.metrics import resolve
from common.submission import SubmissionFormat, infer_sample, validate
from competitions.tabular import data as D


def _write(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


TRAIN = "PassengerId,Pclass,Sex,Survived\n1,3,male,0\n2,1,female,1\n3,3,female,1\n4,1,male,0\n"
TEST = "PassengerId,Pclass,Sex\n5,3,male\n6,1,female\n"


def test_long_sample_under_titanic_name(tmp_path):
    folder = _write(tmp_path, {"train.csv": TRAIN, "test.csv": TEST, "gender_submission.csv": "PassengerId,Survived\n5,0\n6,1\n"})
    layout = infer_sample(folder)
    assert (layout.source.name, layout.id_column, layout.value_columns, layout.test.name, layout.shape) == \
        ("gender_submission.csv", "PassengerId", ("Survived",), "test.csv", "long")
    data = D.load(folder, resolve("accuracy"))
    assert (data.target.task, data.target.columns, data.target.classes) == ("binary", ["Survived"], ["0", "1"])
    assert data.features == ["Pclass", "Sex"]


def test_wide_sample_one_column_per_class_with_string_ids(tmp_path):
    folder = _write(tmp_path, {
        "Train.csv": "ID,size,colour,species\n007,1.0,red,Cape Batis\n010,2.0,blue,Ring-necked Dove\n011,2.5,red,Bokmakierie\n",
        "Test.csv": "ID,size,colour\n012,1.5,red\n0013,2.0,blue\n",
        "SampleSubmission.csv": "ID,Bokmakierie,Cape Batis,Ring-necked Dove\n012,0.3,0.3,0.4\n0013,0.3,0.3,0.4\n"})
    layout = infer_sample(folder)
    assert layout.shape == "wide" and layout.value_columns == ("Bokmakierie", "Cape Batis", "Ring-necked Dove")
    data = D.load(folder, resolve("logloss"))
    assert data.target.task == "multiclass" and data.target.columns == ["species"]
    assert data.target.class_columns == ["Bokmakierie", "Cape Batis", "Ring-necked Dove"]
    assert list(data.test["ID"]) == ["012", "0013"]  # string ids keep their zeros


def test_wide_sample_with_prefixed_class_columns(tmp_path):
    folder = _write(tmp_path, {
        "train.csv": "id,f,target\n1,0.1,1\n2,0.2,2\n3,0.3,3\n",
        "test.csv": "id,f\n4,0.4\n5,0.5\n",
        "submission_format.csv": "id,Class_1,Class_2,Class_3\n4,0,0,0\n5,0,0,0\n"})
    data = D.load(folder, resolve("logloss"))
    assert data.target.classes == ["1", "2", "3"] and data.target.class_columns == ["Class_1", "Class_2", "Class_3"]


def test_sample_found_by_content_under_an_odd_name_inside_a_zip(tmp_path):
    folder = _write(tmp_path, {"train.csv": TRAIN, "test.csv": TEST})
    with zipfile.ZipFile(folder / "extra.zip", "w") as archive:
        archive.writestr("bundle/what_to_upload.csv", "PassengerId,Survived\n5,0\n6,0\n")
    layout = infer_sample(folder)
    assert layout.source.name == "what_to_upload.csv" and layout.source.member == "bundle/what_to_upload.csv"
    assert layout.test.name == "test.csv"


def test_multilabel_sample_names_train_columns(tmp_path):
    folder = _write(tmp_path, {
        "train_features.csv": "seq,a,b\nx1,1,2\nx2,3,4\nx3,5,6\n",
        "train.csv": "seq,a,b,zebra,lion\nx1,1,2,1,0\nx2,3,4,0,1\nx3,5,6,1,1\n",
        "test.csv": "seq,a,b\ny1,1,1\ny2,2,2\n",
        "sample_submission.csv": "seq,zebra,lion\ny1,0.5,0.5\ny2,0.5,0.5\n"})
    data = D.load(folder, resolve("logloss"))
    assert data.target.task == "multilabel" and data.target.columns == ["zebra", "lion"]
    assert data.train_source.name == "train.csv"


def test_sample_whose_ids_are_not_the_tests_is_one_clear_error(tmp_path):
    folder = _write(tmp_path, {"train.csv": TRAIN, "test.csv": TEST,
                               "sample_submission.csv": "PassengerId,Survived\n5,0\n7,0\n"})
    with pytest.raises(io.InputError) as raised:
        infer_sample(folder)
    message = str(raised.value)
    assert "sample_submission.csv" in message and "test.csv" in message and "'7'" in message
    assert "\n" not in message


def test_no_sample_at_all_names_the_files_looked_at(tmp_path):
    folder = _write(tmp_path, {"train.csv": TRAIN, "notes.csv": "a,b\n1,2\n"})
    with pytest.raises(io.InputError, match="no sample submission found.*notes.csv"):
        infer_sample(folder)


def test_label_domain_accepts_only_the_train_labels():
    sample = pd.DataFrame({"id": ["1", "2", "3"], "label": ["yes", "yes", "yes"]})
    good = pd.DataFrame({"id": ["1", "2", "3"], "label": ["yes", "no", "no"]})
    bad = pd.DataFrame({"id": ["1", "2", "3"], "label": ["yes", "maybe", "0.7"]})
    format = SubmissionFormat("s.csv", id_column="id", domain="label", labels=("no", "yes"))
    assert validate(good, sample, format) == []
    problems = validate(bad, sample, format)
    assert [p.kind for p in problems] == ["out_of_domain"] and problems[0].count == 2
    numeric = SubmissionFormat("s.csv", id_column="id", domain="label", labels=("0", "1"))
    assert validate(good.assign(label=["1", "0.0", "1.0"]), sample, numeric) == []
    nonnegative = SubmissionFormat("s.csv", id_column="id", domain="nonnegative")
    assert [p.kind for p in validate(good.assign(label=["0", "2.5", "-1"]), sample, nonnegative)] == ["out_of_domain"]
