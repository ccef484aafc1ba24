"""The Kaggle runner driven through the real `kaggle` client against a local server.

The client speaks to http://localhost when KAGGLE_API_ENVIRONMENT=LOCALHOST and, like
any requests program, goes through HTTP_PROXY: the fake below is that proxy, so every
request the client makes (RPC posts, the upload PUT, the archive GET) lands here.
"""
from __future__ import annotations

import base64
import io as bytes_io
import json
import threading
import zipfile
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from common import platforms
from common.metrics import RMSLE
from common.platforms import web
from common.submission import SubmissionFormat
from conftest import SampleEcho, register, submission_of_a_run

SLUG = "house-prices-advanced-regression-techniques"
TOKEN = "KGAT_0123456789abcdef0123456789abcdef"
SAMPLE = "Id,SalePrice\n1461,180000\n1462,180000\n1463,180000\n"


def _archive() -> bytes:
    buffer = bytes_io.BytesIO()
    # Stored, not deflated, and over 2 MiB: the client writes whole 1 MiB chunks, so half
    # the archive must hold at least one for a resume to start past zero.
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("train.csv", "Id,LotArea,SalePrice\n" + "".join(f"{i},{8000 + i},{100000 + i}\n" for i in range(1, 150_001)))
        archive.writestr("test.csv", "Id,LotArea\n1461,9000\n1462,9100\n1463,9200\n")
        archive.writestr("sample_submission.csv", SAMPLE)
        archive.writestr("data_description.txt", "MSSubClass: the building class\n")
    return buffer.getvalue()


class FakeKaggle(ThreadingHTTPServer):
    """Kaggle's RPC endpoints as kagglesdk calls them, plus storage for uploads and the archive."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), KaggleHandler)
        self.calls: list[tuple[str, str, dict]] = []
        self.fail: dict[str, list[tuple[int, str]]] = {}   # RPC name -> answers to give first
        self.record_then_fail: tuple[int, str] | None = None  # CreateSubmission records, then answers this
        self.submissions: list[dict] = []
        self.uploaded: list[bytes] = []  # the bodies of the upload PUTs
        self.scoring: list[dict] = []  # one per listing: what the newest submission becomes then
        self.limits = {"numToday": 1, "numTotal": 7, "numAllowedNow": 4}
        self.archive = _archive()
        self.cut_first_download = False
        self.echo_auth_in_errors = False
        self.accepted = {f"Bearer {TOKEN}"}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def names(self) -> list[str]:
        return [name for _, name, _ in self.calls]


class KaggleHandler(BaseHTTPRequestHandler):
    server: FakeKaggle

    def log_message(self, *args):
        pass

    def _json(self, status: int, payload: dict) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        name = urlsplit(self.path).path.rsplit("/", 1)[-1]
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        self.server.calls.append(("POST", name, dict(self.headers)))
        auth = self.headers.get("Authorization", "")
        if auth not in self.server.accepted:
            echo = f" (got {auth})" if self.server.echo_auth_in_errors else ""
            return self._json(401, {"code": 401, "message": "Unauthenticated" + echo})
        queued = self.server.fail.get(name)
        if queued:
            status, message = queued.pop(0)
            echo = f" (request had Authorization: {auth})" if self.server.echo_auth_in_errors else ""
            return self._json(status, {"code": status, "message": message + echo})
        if name == "GetSubmissionLimits":
            return self._json(200, self.server.limits)
        if name == "DownloadDataFiles":
            self.send_response(302)
            self.send_header("Location", f"{self.server.url}/storage/{body['competitionName']}.zip?sig=abc")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if name == "StartSubmissionUpload":
            return self._json(200, {"token": "blob-token-1", "createUrl": f"{self.server.url}/upload/blob-token-1"})
        if name == "CreateSubmission":
            self.server.submissions.append({"fileName": "submission.csv", "description": body.get("submissionDescription"),
                                            "date": "2030-01-01T00:00:00.000Z", "status": "PENDING", "ref": 77})
            if self.server.record_then_fail:
                status, message = self.server.record_then_fail
                return self._json(status, {"code": status, "message": message})
            return self._json(200, {"message": "Successfully submitted", "ref": 77})
        if name == "ListSubmissions":
            if self.server.scoring and self.server.submissions:
                self.server.submissions[-1].update(self.server.scoring.pop(0))
            return self._json(200, {"submissions": list(reversed(self.server.submissions))})
        if name == "GetLeaderboard":
            return self._json(200, {"submissions": [
                {"teamId": 1, "teamName": "stackers", "submissionDate": "2030-01-01T00:00:00.000Z", "score": "0.11420"},
                {"teamId": 2, "teamName": "automl", "submissionDate": "2030-01-02T00:00:00.000Z", "score": "0.11960"}]})
        return self._json(404, {"code": 404, "message": f"no route {name}"})

    def do_PUT(self):
        self.server.calls.append(("PUT", urlsplit(self.path).path, dict(self.headers)))
        self.server.uploaded.append(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        self._json(200, {})

    def do_GET(self):
        self.server.calls.append(("GET", urlsplit(self.path).path, dict(self.headers)))
        data = self.server.archive
        start = 0
        if self.headers.get("Range"):
            start = int(self.headers["Range"].split("=")[1].split("-")[0])
        self.send_response(206 if start else 200)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", '"v1"')
        self.send_header("Last-Modified", formatdate(1_800_000_000, usegmt=True))
        self.send_header("Content-Length", str(len(data) - start))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        if self.server.cut_first_download and not start:
            self.server.cut_first_download = False
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.connection.shutdown(2)  # the network drops half-way
            return
        self.wfile.write(data[start:])


@pytest.fixture
def kaggle(tmp_path, monkeypatch):
    server = FakeKaggle()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in ("KAGGLE_CONFIG_DIR", "KAGGLE_USERNAME", "KAGGLE_KEY", "XDG_CONFIG_HOME", "VERBOSE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KAGGLE_API_TOKEN", TOKEN)
    monkeypatch.setenv("KAGGLE_API_ENVIRONMENT", "LOCALHOST")
    for name in ("HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(name, server.url)
    for name in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(web, "RETRY_DELAYS", (0.01, 0.01, 0.01))
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def data_dir(tmp_path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "sample_submission.csv").write_text(SAMPLE)
    return folder


@pytest.fixture
def good_file(tmp_path) -> Path:
    path = tmp_path / "submission.csv"
    path.write_text("Id,SalePrice\n1461,181000.5\n1462,175000\n1463,190000\n")
    return path


def test_download_lands_unzipped_where_run_reads(compete, kaggle, tmp_path):
    out = tmp_path / "house"
    result = compete.in_process("data", "download", "house-prices", "--out", out, "--quiet")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["data_description.txt", "sample_submission.csv", "test.csv", "train.csv"]
    assert (out / "sample_submission.csv").read_text() == SAMPLE
    assert "DownloadDataFiles" in kaggle.names()


def test_real_files_downloaded_load_as_compete_run_reads_them(compete, kaggle, house_data, tmp_path):
    """Kaggle's real House Prices files served as Kaggle zips them: the folder `data
    download` leaves is one the competition's loader reads unchanged."""
    from common.competition import get
    buffer = bytes_io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(house_data.iterdir()):
            if path.is_file():
                archive.write(path, path.name)
    kaggle.archive = buffer.getvalue()
    out = tmp_path / "house"
    assert compete.in_process("data", "download", "house-prices", "--out", out, "--quiet").exit_code == 0
    loaded = get("house-prices").load(out)
    assert len(loaded.train) == 1460 and len(loaded.test) == 1459
    assert compete.in_process("validate", "house-prices", out / "sample_submission.csv", "--data", out).exit_code == 0


def test_download_interrupted_half_way_resumes_with_range(compete, kaggle, tmp_path):
    kaggle.cut_first_download = True
    out = tmp_path / "house"
    result = compete.in_process("data", "download", "house-prices", "--out", out, "--quiet")
    assert result.exit_code == 0, result.output
    ranges = [headers.get("Range") for method, _, headers in kaggle.calls if method == "GET"]
    assert ranges[0] is None and ranges[1] is not None
    resumed_from = int(ranges[1].split("=")[1].rstrip("-"))
    assert 0 < resumed_from < len(kaggle.archive)
    assert (out / "train.csv").read_text().count("\n") == 150_001


def test_download_request_failing_on_the_server_is_retried(compete, kaggle, tmp_path):
    kaggle.fail["DownloadDataFiles"] = [(503, "unavailable")]
    result = compete.in_process("data", "download", "house-prices", "--out", tmp_path / "house", "--quiet")
    assert result.exit_code == 0, result.output
    assert kaggle.names().count("DownloadDataFiles") == 2


def test_wrong_slug_on_download(compete, kaggle, tmp_path):
    kaggle.fail["DownloadDataFiles"] = [(403, "Required permission 'competitions.get' was not satisfied")]
    result = compete.in_process("data", "download", "house-prices", "--out", tmp_path / "house")
    assert result.exit_code == 2 and "no competition by this slug" in result.output
    assert kaggle.names().count("DownloadDataFiles") == 1


def test_submit_uploads_once_with_the_message(compete, kaggle, data_dir, good_file):
    result = compete.in_process("submit", "house-prices", good_file, "--data", data_dir, "-m", "blend v3")
    assert result.exit_code == 0, result.output
    assert "submitted" in result.output
    assert kaggle.names().count("CreateSubmission") == 1
    assert kaggle.submissions[0]["description"] == "blend v3"
    assert any(method == "PUT" for method, _, _ in kaggle.calls)


def test_invalid_file_is_refused_before_any_request(compete, kaggle, data_dir, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("Id,SalePrice\n1461,-5\n1461,3\n")
    result = compete.in_process("submit", "house-prices", bad, "--data", data_dir, "-m", "oops")
    assert result.exit_code == 1
    assert "not submitted" in result.output and "duplicate_ids" in result.output
    assert kaggle.calls == []


def test_dry_run_checks_access_but_uploads_nothing(compete, kaggle, data_dir, good_file):
    result = compete.in_process("submit", "house-prices", good_file, "--data", data_dir, "-m", "try", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "dry run" in result.output and "4 submission(s) left" in result.output
    # The official client signs a KGAT_ token in with IntrospectToken on its first call in a
    # process (kaggle/api/kaggle_api_extended.py, _authenticate_with_access_token); whether
    # that happens here depends on which test ran first, so it is left out of the check.
    assert [name for name in kaggle.names() if name != "IntrospectToken"] == ["GetSubmissionLimits"]


@pytest.mark.parametrize("rpc, status, message, expected", [
    ("GetSubmissionLimits", 403, "You must accept this competition's rules before you'll be able to submit.", "rules not accepted"),
    ("GetSubmissionLimits", 403, "Permission 'competitions.participate' was denied", "not joined"),
    ("GetSubmissionLimits", 404, "Competition not found", "no competition by this slug"),
    ("GetSubmissionLimits", 401, "Unauthenticated", "refused the credentials"),
    ("CreateSubmission", 400, "Submission not allowed: Your team has used its daily Submission allowance (5) today",
     "daily submission limit reached"),
])
def test_known_refusals_are_one_line(compete, kaggle, data_dir, good_file, rpc, status, message, expected):
    kaggle.fail[rpc] = [(status, message)]
    result = compete.in_process("submit", "house-prices", good_file, "--data", data_dir, "-m", "x")
    assert result.exit_code == 2
    assert expected in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and expected in errors[0] and "Traceback" not in result.output
    assert kaggle.names().count("CreateSubmission") <= 1


def test_limit_reached_is_refused_before_uploading(compete, kaggle, data_dir, good_file):
    kaggle.limits = {"numToday": 5, "numTotal": 40, "numAllowedNow": 0}
    result = compete.in_process("submit", "house-prices", good_file, "--data", data_dir, "-m", "x")
    assert result.exit_code == 2 and "daily submission limit reached" in result.output
    assert "StartSubmissionUpload" not in kaggle.names()


def test_not_joined_shows_as_no_team(compete, kaggle, data_dir, good_file):
    kaggle.limits = {}
    result = compete.in_process("submit", "house-prices", good_file, "--data", data_dir, "-m", "x")
    assert result.exit_code == 2 and "join and accept the rules" in result.output


def test_network_down(compete, kaggle, data_dir, good_file, monkeypatch):
    closed = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    port = closed.server_address[1]
    closed.server_close()
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{port}")
    result = compete.in_process("submissions", "house-prices")
    assert result.exit_code == 2
    assert "cannot reach Kaggle" in result.output and "connection refused" in result.output


def test_server_errors_on_reads_are_retried_then_reported(compete, kaggle):
    kaggle.fail["ListSubmissions"] = [(503, "unavailable")] * 2
    result = compete.in_process("submissions", "house-prices")
    assert result.exit_code == 0, result.output
    assert kaggle.names().count("ListSubmissions") == 3
    kaggle.fail["ListSubmissions"] = [(500, "boom")] * 10
    result = compete.in_process("submissions", "house-prices")
    assert result.exit_code == 2 and "server error" in result.output
    assert kaggle.names().count("ListSubmissions") == 3 + len(web.RETRY_DELAYS) + 1


def test_failure_after_kaggle_recorded_it_is_not_resubmitted(compete, kaggle, data_dir, good_file):
    kaggle.record_then_fail = (502, "Bad gateway")
    result = compete.in_process("submit", "house-prices", good_file, "--data", data_dir, "-m", "only once")
    assert result.exit_code == 0, result.output
    assert "not sent again" in result.output
    assert kaggle.names().count("CreateSubmission") == 1
    assert len(kaggle.submissions) == 1


def test_ambiguous_failure_not_listed_is_reported_not_retried(compete, kaggle, data_dir, good_file):
    kaggle.fail["CreateSubmission"] = [(503, "unavailable")] * 5
    result = compete.in_process("submit", "house-prices", good_file, "--data", data_dir, "-m", "maybe")
    assert result.exit_code == 2
    assert "before submitting again" in result.output and "double submission" in result.output
    assert kaggle.names().count("CreateSubmission") == 1


def test_failure_before_the_submission_exists_is_retried(compete, kaggle, data_dir, good_file):
    kaggle.fail["StartSubmissionUpload"] = [(503, "unavailable")]
    result = compete.in_process("submit", "house-prices", good_file, "--data", data_dir, "-m", "second try")
    assert result.exit_code == 0, result.output
    assert kaggle.names().count("StartSubmissionUpload") == 2
    assert kaggle.names().count("CreateSubmission") == 1


def test_submissions_and_leaderboard_tables(compete, kaggle, data_dir, good_file):
    assert compete.in_process("submit", "house-prices", good_file, "--data", data_dir, "-m", "blend v3").exit_code == 0
    listed = compete.in_process("submissions", "house-prices")
    assert listed.exit_code == 0 and "blend v3" in listed.output and "pending" in listed.output
    board = compete.in_process("leaderboard", "house-prices")
    assert board.exit_code == 0
    lines = board.output.splitlines()
    assert "stackers" in lines[1] and "0.11420" in lines[1] and "automl" in lines[2]


def test_legacy_key_in_config_dir_is_sent_as_basic_auth(compete, kaggle, tmp_path, monkeypatch):
    monkeypatch.delenv("KAGGLE_API_TOKEN")
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    (folder / "kaggle.json").write_text(json.dumps({"username": "alice", "key": "legacykey0123456789"}))
    (folder / "kaggle.json").chmod(0o600)
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(folder))
    kaggle.accepted = {"Basic " + base64.b64encode(b"alice:legacykey0123456789").decode()}
    result = compete.in_process("leaderboard", "house-prices")
    assert result.exit_code == 0, result.output
    assert "stackers" in result.output


def test_token_file_in_config_dir(compete, kaggle, tmp_path, monkeypatch):
    monkeypatch.delenv("KAGGLE_API_TOKEN")
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    (folder / "access_token").write_text(TOKEN + "\n")
    (folder / "access_token").chmod(0o600)
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(folder))
    assert compete.in_process("leaderboard", "house-prices").exit_code == 0


def test_credentials_readable_by_others_are_refused(compete, kaggle, tmp_path, monkeypatch):
    monkeypatch.delenv("KAGGLE_API_TOKEN")
    folder = Path.home() / ".kaggle"
    folder.mkdir()
    (folder / "kaggle.json").write_text(json.dumps({"username": "alice", "key": "legacykey0123456789"}))
    (folder / "kaggle.json").chmod(0o644)
    result = compete.in_process("submissions", "house-prices")
    assert result.exit_code == 2
    assert f"chmod 600 {folder / 'kaggle.json'}" in result.output
    assert "legacykey" not in result.output
    assert kaggle.calls == []


def test_missing_credentials_say_where_to_put_them(compete, kaggle, monkeypatch):
    monkeypatch.delenv("KAGGLE_API_TOKEN")
    result = compete.in_process("leaderboard", "house-prices")
    assert result.exit_code == 2 and "no Kaggle credentials" in result.output and "access_token" in result.output
    assert kaggle.calls == []


def test_secrets_never_reach_output_logs_or_errors(compete, kaggle, tmp_path):
    """A server that echoes the Authorization header into its error: the token must show
    nowhere, neither in the CLI's output, nor in a debug log of every logger, nor in the
    exception a notebook would see."""
    import logging
    kaggle.echo_auth_in_errors = True
    kaggle.fail["ListSubmissions"] = [(400, "Bad request")] * 2
    log_file = tmp_path / "debug.log"
    handler = logging.FileHandler(log_file)
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        result = compete.in_process("submissions", "house-prices")
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
        handler.close()
    assert result.exit_code == 2
    assert "Bad request (request had Authorization: Bearer ***)" in result.output
    assert TOKEN not in result.output
    assert log_file.read_text() and TOKEN not in log_file.read_text()
    from common.platforms import kaggle as runner
    from common.competition import get
    with pytest.raises(Exception) as caught:
        runner.submissions(get("house-prices"))
    assert "Bad request" in str(caught.value) and TOKEN not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_verbose_client_dump_is_redacted_in_a_real_process(kaggle, data_dir, good_file):
    """VERBOSE=1 makes the client print every request with its headers: run the real
    command and look at everything it wrote."""
    import os
    import subprocess
    import sys
    env = dict(os.environ, VERBOSE="1")
    done = subprocess.run([sys.executable, "-m", "cli", "submit", "house-prices", str(good_file), "--data", str(data_dir),
                           "-m", "verbose"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "Authorization: Bearer ***" in done.stdout + done.stderr
    assert TOKEN not in done.stdout + done.stderr
    assert kaggle.names().count("CreateSubmission") == 1


class DemoKaggle(SampleEcho):
    name = "kaggle-demo"
    platform = "kaggle"
    slug = SLUG
    metric = RMSLE
    submission = SubmissionFormat("sample_submission.csv", id_column="Id", domain="positive")


@pytest.fixture
def made_by_a_run(kaggle, data_dir, tmp_path, monkeypatch) -> tuple[Path, Path]:
    """A submission file from a real `compete run`, and the run directory that made it."""
    register(DemoKaggle, monkeypatch)
    return submission_of_a_run("kaggle-demo", data_dir, tmp_path, monkeypatch)


def test_submit_wait_prints_the_public_score_and_records_it_on_the_run(compete, kaggle, made_by_a_run, data_dir):
    import mlflow
    file, run_dir = made_by_a_run
    kaggle.scoring = [{}, {"status": "COMPLETE", "publicScore": "0.13371"}]  # scored at the second look
    result = compete.in_process("submit", "kaggle-demo", file, "--data", data_dir, "-m", "wait for it", "--wait")
    assert result.exit_code == 0, result.output
    assert "public score (rmsle): 0.13371" in result.output and f"recorded as lb_score of run {run_dir}" in result.output
    assert kaggle.names().count("ListSubmissions") == 2 and kaggle.names().count("CreateSubmission") == 1
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["lb_score"] == 0.13371 and metrics["lb_reference"] == "77"
    assert mlflow.MlflowClient().get_run(metrics["mlflow_run_id"]).data.metrics["lb_score"] == 0.13371


def test_submit_wait_gives_up_on_a_submission_still_pending(compete, kaggle, made_by_a_run, data_dir):
    file, run_dir = made_by_a_run
    result = compete.in_process("submit", "kaggle-demo", file, "--data", data_dir, "-m", "slow", "--wait")
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert "submitted" in result.output and "is not scored yet: still pending" in errors[0]
    assert kaggle.names().count("ListSubmissions") == 1 + len(platforms.SCORE_DELAYS)
    assert "lb_score" not in json.loads((run_dir / "metrics.json").read_text())


def test_submit_wait_reports_a_submission_kaggle_could_not_score(compete, kaggle, made_by_a_run, data_dir):
    file, run_dir = made_by_a_run
    kaggle.scoring = [{"status": "ERROR", "errorDescription": "Submission must have 3 rows, it has 2"}]
    result = compete.in_process("submit", "kaggle-demo", file, "--data", data_dir, "-m", "broken", "--wait")
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert "was not scored: Submission must have 3 rows, it has 2" in errors[0]
    assert "lb_score" not in json.loads((run_dir / "metrics.json").read_text())


def test_submit_wait_on_a_file_no_run_made_still_prints_the_score(compete, kaggle, data_dir, good_file, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(platforms, "SCORE_DELAYS", (0.01,) * 3)
    kaggle.scoring = [{"status": "COMPLETE", "publicScore": "0.2"}]
    result = compete.in_process("submit", "house-prices", good_file, "--data", data_dir, "-m", "by hand", "--wait")
    assert result.exit_code == 0, result.output
    assert "public score (rmsle): 0.2" in result.output and "recorded nowhere" in result.output


def test_a_gzipped_submission_is_validated_as_its_csv_and_uploaded_as_it_is(compete, kaggle, data_dir, good_file, tmp_path):
    """Kaggle's upload takes a .csv.gz (and a zip of one CSV): the file goes as the user gave it."""
    import gzip
    packed = tmp_path / "preds.csv.gz"
    packed.write_bytes(gzip.compress(good_file.read_bytes()))
    result = compete.in_process("submit", "house-prices", packed, "--data", data_dir, "-m", "gz")
    assert result.exit_code == 0, result.output
    assert f"{packed} (gzip): valid" in result.output and "submitted" in result.output
    assert kaggle.uploaded == [packed.read_bytes()]
