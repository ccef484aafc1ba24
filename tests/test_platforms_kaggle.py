"""The Kaggle runner driven through the real `kaggle` client against a local server.

The client speaks to http://localhost when KAGGLE_API_ENVIRONMENT=LOCALHOST and, like
any requests program, goes through HTTP_PROXY: the fake below is that proxy, so every
request the client makes (RPC posts, the upload PUT, the archive GET) lands here.

Code submissions (a package folder) go through the same client calls a Kaggle user's
CLI makes, so the client's own checks of kernel-metadata.json and
dataset-metadata.json run on the package's folders before the fake sees a request; the
fake then checks what Kaggle would (the owner is the signed-in user, the uploaded files
exist, the sources are attached, the submitted version completed and wrote the file).
"""
from __future__ import annotations

import base64
import io as bytes_io
import json
import threading
import zipfile
from datetime import datetime, timezone
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from common import platforms
from common.metrics import RMSE_OF_LOGS
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
        self.bodies: list[tuple[str, dict]] = []     # every RPC's name and JSON body, in order
        # Code submissions: the signed-in user's datasets and kernels, the uploaded blobs.
        self.user = "alice"
        self.datasets: dict[str, dict] = {}   # "owner/slug" -> {"version", "files", "looks_to_ready", "notes"}
        self.kernels: dict[str, list[dict]] = {}   # "owner/slug" -> its versions, oldest first
        self.blobs: dict[str, dict] = {}      # upload token -> {"name", "size"}
        self.looks_to_ready = 1               # status looks at a new dataset version before it is READY
        self.run = {"statuses": ["QUEUED", "RUNNING", "COMPLETE"], "failure": "", "log": [],
                    "files": {"submission.csv": "Id,SalePrice\n1461,181000.5\n1462,175000\n1463,190000\n"}}
        self.applied_then_fail: dict[str, tuple[int, str]] = {}   # creating RPC -> its answer after applying it
        self.applied_then_drop: set[str] = set()   # creating RPCs whose connection drops after applying them

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def names(self) -> list[str]:
        return [name for _, name, _ in self.calls]

    def body(self, name: str) -> dict:
        """The JSON body of the one call of RPC `name`."""
        bodies = [body for called, body in self.bodies if called == name]
        assert len(bodies) == 1, f"{name} called {len(bodies)} times"
        return bodies[0]


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
        self.server.bodies.append((name, body))
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
        code = getattr(self, f"_{name}", None)
        if code is not None:
            return code(body)
        return self._json(404, {"code": 404, "message": f"no route {name}"})

    # ------------------------------------------------------------ code submissions
    # Each answers as kagglesdk's response type reads it (kagglesdk 0.1.38: field names of
    # kernels/types/kernels_api_service.py, datasets/types/dataset_api_service.py,
    # blobs/types/blob_api_service.py, competitions/types/competition_api_service.py).

    def _applied(self, name: str, answer: dict) -> None:
        """Answer a creating RPC that was applied: as asked, or with the scripted failure."""
        if name in self.server.applied_then_drop:
            self.close_connection = True   # no answer at all: the client sees the connection drop
            return
        if name in self.server.applied_then_fail:
            status, message = self.server.applied_then_fail[name]
            return self._json(status, {"code": status, "message": message})
        return self._json(200, answer)

    def _not_found(self, what: str) -> None:
        return self._json(404, {"code": 404, "message": f"{what} not found"})

    def _IntrospectToken(self, body):
        return self._json(200, {"active": True, "username": self.server.user})

    def _StartBlobUpload(self, body):
        token = f"blob-{len(self.server.blobs) + 1}"
        self.server.blobs[token] = {"name": body["name"], "size": None}
        return self._json(200, {"token": token, "createUrl": f"{self.server.url}/upload/{token}"})

    def _files(self, body) -> list[str] | None:
        """The names of the uploaded blobs a dataset request names; None if one was never uploaded."""
        tokens = [entry["token"] for entry in body.get("files", [])]
        if any(self.server.blobs.get(token, {}).get("size") is None for token in tokens):
            return None
        return sorted(self.server.blobs[token]["name"] for token in tokens)

    def _GetDatasetStatus(self, body):
        dataset = self.server.datasets.get(f"{body['ownerSlug']}/{body['datasetSlug']}")
        if dataset is None:
            return self._not_found("dataset")
        if dataset["looks_to_ready"] > 0:
            dataset["looks_to_ready"] -= 1
            return self._json(200, {"status": "BLOBS_RECEIVED"})
        return self._json(200, {"status": "READY"})

    def _GetDataset(self, body):
        ref = f"{body['ownerSlug']}/{body['datasetSlug']}"
        if ref not in self.server.datasets:
            return self._not_found("dataset")
        return self._json(200, {"ref": ref, "currentVersionNumber": self.server.datasets[ref]["version"]})

    def _CreateDataset(self, body):
        ref = f"{body['ownerSlug']}/{body['slug']}"
        if body["ownerSlug"] != self.server.user:
            return self._json(403, {"code": 403, "message": f"Permission denied: {body['ownerSlug']} is not you"})
        if ref in self.server.datasets:
            return self._json(200, {"status": "error", "error": "The requested slug is already in use"})
        files = self._files(body)
        if not files:
            return self._json(400, {"code": 400, "message": "A dataset needs uploaded files"})
        self.server.datasets[ref] = {"version": 1, "files": files, "looks_to_ready": self.server.looks_to_ready,
                                     "notes": [None], "private": body.get("isPrivate")}
        return self._applied("CreateDataset", {"ref": ref, "url": f"https://www.kaggle.com/datasets/{ref}", "status": "ok"})

    def _CreateDatasetVersion(self, body):
        ref = f"{body['ownerSlug']}/{body['datasetSlug']}"
        dataset = self.server.datasets.get(ref)
        if dataset is None:
            return self._not_found("dataset")
        files = self._files(body["body"])
        if not files:
            return self._json(400, {"code": 400, "message": "A dataset version needs uploaded files"})
        dataset.update(version=dataset["version"] + 1, files=files, looks_to_ready=self.server.looks_to_ready)
        dataset["notes"].append(body["body"].get("versionNotes"))
        return self._applied("CreateDatasetVersion", {"ref": ref, "url": f"https://www.kaggle.com/datasets/{ref}",
                                                      "status": "ok"})

    def _ListKernels(self, body):
        mine = [{"ref": ref, "title": ref.split("/")[1], "currentVersionNumber": len(versions)}
                for ref, versions in self.server.kernels.items()
                if ref.split("/")[0] == self.server.user and body.get("search", "") in ref]
        return self._json(200, {"kernels": mine})

    def _SaveKernel(self, body):
        ref = body["slug"]
        if ref.split("/")[0] != self.server.user:
            return self._json(403, {"code": 403, "message": f"Permission denied on kernel {ref}"})
        if body.get("kernelType") == "notebook":
            try:
                cells = json.loads(body["text"])["cells"]
            except (ValueError, KeyError):
                return self._json(400, {"code": 400, "message": "The notebook is not valid JSON"})
            if any(not isinstance(cell.get("source", ""), str) for cell in cells):
                return self._json(400, {"code": 400, "message": "A cell's source must be one string"})
        unattached = [source for source in body.get("datasetDataSources", []) if source not in self.server.datasets]
        versions = self.server.kernels.setdefault(ref, [])
        versions.append({"statuses": list(self.server.run["statuses"]), "failure": self.server.run["failure"],
                         "log": json.dumps(self.server.run["log"]), "files": dict(self.server.run["files"]),
                         "request": body})
        return self._applied("SaveKernel", {"ref": f"/code/{ref}", "url": f"https://www.kaggle.com/code/{ref}",
                                            "versionNumber": len(versions), "invalidDatasetSources": unattached})

    def _version(self, body) -> tuple[str, int, dict] | None:
        ref = f"{body['userName']}/{body['kernelSlug']}"
        versions = self.server.kernels.get(ref, [])
        number = int(body.get("versionLabel", f"v{len(versions)}").lstrip("v"))
        return (ref, number, versions[number - 1]) if 0 < number <= len(versions) else None

    def _GetKernelSessionStatus(self, body):
        found = self._version(body)
        if found is None:
            return self._not_found("kernel version")
        statuses = found[2]["statuses"]
        status = statuses.pop(0) if len(statuses) > 1 else statuses[0]
        return self._json(200, {"status": status, "failureMessage": found[2]["failure"] if status == "ERROR" else None})

    def _ListKernelSessionOutput(self, body):
        found = self._version(body)
        if found is None:
            return self._not_found("kernel version")
        ref, number, version = found
        files = [{"fileName": name, "url": f"{self.server.url}/output/{ref}/{number}/{name}"} for name in version["files"]]
        return self._json(200, {"files": files, "log": version["log"]})

    def _CreateCodeSubmission(self, body):
        found = self._version({"userName": body["kernelOwner"], "kernelSlug": body["kernelSlug"],
                               "versionLabel": f"v{body['kernelVersion']}"})
        if found is None:
            return self._not_found("kernel version")
        if found[2]["statuses"][-1] != "COMPLETE" or body["fileName"] not in found[2]["files"]:
            return self._json(400, {"code": 400, "message": f"Version {body['kernelVersion']} has no output "
                                                            f"{body['fileName']}"})
        ref = 101 + len(self.server.submissions)
        self.server.submissions.append({"fileName": body["fileName"], "description": body.get("submissionDescription"),
                                        "date": datetime.now(timezone.utc).isoformat(), "status": "PENDING", "ref": ref})
        return self._applied("CreateCodeSubmission", {"message": "Your submission was successfully saved", "ref": ref})

    def do_PUT(self):
        path = urlsplit(self.path).path
        self.server.calls.append(("PUT", path, dict(self.headers)))
        data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.uploaded.append(data)
        token = path.rsplit("/", 1)[-1]
        if token in self.server.blobs:
            self.server.blobs[token]["size"] = len(data)
        self._json(200, {})

    def do_GET(self):
        path = urlsplit(self.path).path
        self.server.calls.append(("GET", path, dict(self.headers)))
        if path.startswith("/output/"):
            _, _, owner, slug, number, name = path.split("/", 5)
            data = self.server.kernels[f"{owner}/{slug}"][int(number) - 1]["files"][name].encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
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
    from competitions import REGISTRY
    buffer = bytes_io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(house_data.iterdir()):
            if path.is_file():
                archive.write(path, path.name)
    kaggle.archive = buffer.getvalue()
    out = tmp_path / "house"
    assert compete.in_process("data", "download", "house-prices", "--out", out, "--quiet").exit_code == 0
    loaded = REGISTRY.competition("house-prices").load(out)
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
    from competitions import REGISTRY
    with pytest.raises(Exception) as caught:
        runner.submissions(REGISTRY.competition("house-prices"))
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
    metric = RMSE_OF_LOGS
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


# ---------------------------------------------------------------- code submissions: a package folder

NOTEBOOK = {"cells": [{"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
                       "source": ["import pandas as pd\n", ("pd.read_csv('/kaggle/input/x/sample_submission.csv')"
                                                             ".to_csv('/kaggle/working/submission.csv', index=False)\n")]}],
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
            "nbformat": 4, "nbformat_minor": 5}


def make_package(folder: Path, owner: str = "OWNER", run_dir: Path | None = None, notebook: dict = NOTEBOOK,
                 helper: str = "", **kernel) -> Path:
    """A package folder laid out as `compete package ... --profile kaggle-notebook` writes
    it (the spec both follow: the notes of issue 20), its dataset holding `helper.py`."""
    root = folder / "package"
    (root / "kernel").mkdir(parents=True)
    (root / "dataset" / "common").mkdir(parents=True)
    manifest = {"competition": "kaggle-demo", "platform": "kaggle", "profile": "kaggle-notebook", "slug": SLUG,
                "kernel": "kernel", "dataset": "dataset", "output": "submission.csv"}
    if run_dir is not None:
        manifest["run_dir"] = str(run_dir.resolve())
    (root / "compete-package.json").write_text(json.dumps(manifest))
    metadata = {"id": f"{owner}/kaggle-demo-inference", "title": "kaggle-demo inference", "code_file": "notebook.ipynb",
                "language": "python", "kernel_type": "notebook", "is_private": True, "enable_gpu": False,
                "enable_tpu": False, "enable_internet": False, "competition_sources": [SLUG],
                "dataset_sources": [f"{owner}/kaggle-demo-model"], "kernel_sources": [], "model_sources": []}
    metadata.update(kernel)
    (root / "kernel" / "kernel-metadata.json").write_text(json.dumps(metadata, indent=2))
    (root / "kernel" / "notebook.ipynb").write_text(json.dumps(notebook))
    (root / "dataset" / "dataset-metadata.json").write_text(json.dumps(
        {"title": "kaggle-demo model", "id": f"{owner}/kaggle-demo-model", "licenses": [{"name": "CC0-1.0"}]}))
    (root / "dataset" / "model.json").write_text('{"SalePrice": 180000}')
    (root / "dataset" / "common" / "__init__.py").write_text("")
    (root / "dataset" / "helper.py").write_text(helper or "def predict(ids):\n    return [180000.0] * len(ids)\n")
    return root


@pytest.fixture
def rerun(kaggle, monkeypatch):
    """The rerun emulation stood in for (the notebook runtime is another module's; one test
    below runs the real one): it records its call among the fake's, so the order of the
    steps shows, and passes unless told to fail."""
    from common.platforms import kaggle_code
    from common.runtimes import runner
    register(DemoKaggle, monkeypatch)
    monkeypatch.setattr(kaggle_code, "RUN_FIRST_POLL", 0.01)
    monkeypatch.setattr(kaggle_code, "RUN_POLL", 0.01)
    monkeypatch.setattr(kaggle_code, "READY_DELAYS", (0.01,) * 5)
    outcome = {"ok": True}

    def run_test(submission, competition, data_dir, profile=None, **options):
        kaggle.calls.append(("RUN", "emulation", {"profile": profile, "competition": competition.name}))
        log = Path(submission).parent / "package.runtime" / "log.txt"
        if outcome["ok"]:
            return runner.RuntimeResult(True, "ok", log, log.with_name("submission.csv"), 3.0, True, profile=profile)
        return runner.RuntimeResult(False, "ValueError: could not convert string to float: 'abc'", log, None, 2.0, True,
                                    profile=profile, failure="Notebook Threw Exception")
    monkeypatch.setattr(runner, "run_test", run_test)
    monkeypatch.setattr(runner, "sandbox_available", lambda: (True, ""))
    return outcome


CREATING = ("CreateDataset", "CreateDatasetVersion", "SaveKernel", "CreateCodeSubmission")


def test_a_package_goes_through_every_step_once_in_order(compete, kaggle, rerun, data_dir, tmp_path):
    package = make_package(tmp_path)
    result = compete.in_process("submit", "kaggle-demo", package, "--data", data_dir, "-m", "notebook v1")
    assert result.exit_code == 0, result.output
    names = kaggle.names()
    steps = ["emulation", "GetSubmissionLimits", "CreateDataset", "SaveKernel", "GetKernelSessionStatus",
             "ListKernelSessionOutput", "CreateCodeSubmission"]
    assert [names.index(step) for step in steps] == sorted(names.index(step) for step in steps)
    assert [kaggle.names().count(name) for name in CREATING] == [1, 0, 1, 1]
    # The dataset: its files, folders zipped as `-r zip` does, and private.
    assert kaggle.datasets["alice/kaggle-demo-model"]["files"] == ["common.zip", "helper.py", "model.json"]
    assert kaggle.datasets["alice/kaggle-demo-model"]["private"] is True
    # The kernel as the client sent it: the owner filled in, internet off, the sources
    # attached, each cell's source joined into one string (the client's own processing).
    pushed = kaggle.body("SaveKernel")
    assert pushed["slug"] == "alice/kaggle-demo-inference" and pushed["enableInternet"] is False
    assert pushed["competitionDataSources"] == [SLUG] and pushed["datasetDataSources"] == ["alice/kaggle-demo-model"]
    assert json.loads(pushed["text"])["cells"][0]["source"].startswith("import pandas as pd\npd.read_csv")
    submitted = kaggle.body("CreateCodeSubmission")
    assert (submitted["kernelOwner"], submitted["kernelSlug"], submitted["kernelVersion"], submitted["fileName"],
            submitted["submissionDescription"]) == ("alice", "kaggle-demo-inference", 1, "submission.csv", "notebook v1")
    # The package's own files now name the owner, and every step said what it did.
    assert json.loads((package / "kernel" / "kernel-metadata.json").read_text())["id"] == "alice/kaggle-demo-inference"
    assert json.loads((package / "dataset" / "dataset-metadata.json").read_text())["id"] == "alice/kaggle-demo-model"
    for said in ("rerun emulation: passed on kaggle-notebook", "signed in as alice", "filled in OWNER with alice",
                 "dataset alice/kaggle-demo-model: created with common.zip (common/ zipped), helper.py, model.json",
                 "dataset alice/kaggle-demo-model: version 1 ready",
                 "kernel alice/kaggle-demo-inference: version 1 pushed", "version 1: running", "version 1: complete",
                 "wrote submission.csv, valid", "submitted kernel alice/kaggle-demo-inference version 1", "(ref 101)"):
        assert said in result.output, said
    kept = tmp_path / "package.kaggle" / "v1" / "submission.csv"
    assert kept.read_text() == kaggle.run["files"]["submission.csv"]


def test_a_package_failing_the_emulation_uploads_nothing(compete, kaggle, rerun, data_dir, tmp_path):
    rerun["ok"] = False
    result = compete.in_process("submit", "kaggle-demo", make_package(tmp_path), "--data", data_dir, "-m", "broken")
    assert result.exit_code == 1
    assert "not uploaded" in result.output and "Notebook Threw Exception: ValueError" in result.output
    assert kaggle.names() == ["emulation"]


def test_an_existing_dataset_is_versioned_not_created(compete, kaggle, rerun, data_dir, tmp_path):
    kaggle.datasets["alice/kaggle-demo-model"] = {"version": 2, "files": ["model.json"], "looks_to_ready": 0,
                                                  "notes": [None, "older"], "private": True}
    result = compete.in_process("submit", "kaggle-demo", make_package(tmp_path), "--data", data_dir, "-m", "v3 of it")
    assert result.exit_code == 0, result.output
    assert kaggle.names().count("CreateDataset") == 0 and kaggle.names().count("CreateDatasetVersion") == 1
    assert kaggle.datasets["alice/kaggle-demo-model"]["version"] == 3
    assert kaggle.datasets["alice/kaggle-demo-model"]["notes"][-1] == "v3 of it"
    assert "dataset alice/kaggle-demo-model: version 3 created" in result.output and "version 3 ready" in result.output
    # The kernel was pushed only once the new version was ready (it would mount the old one).
    names = kaggle.names()
    last_look = max(i for i, name in enumerate(names) if name == "GetDatasetStatus" and i < names.index("SaveKernel"))
    assert last_look > names.index("CreateDatasetVersion")


def test_a_kernel_run_that_errors_reports_its_log_and_submits_nothing(compete, kaggle, rerun, data_dir, tmp_path):
    kaggle.run.update(statuses=["RUNNING", "ERROR"], failure="Notebook Threw Exception", log=[
        {"stream_name": "stdout", "time": 1.5, "data": "reading the test set\n"},
        {"stream_name": "stderr", "time": 2.0, "data": "Traceback (most recent call last):\n  File \"<cell>\", line 2\n"},
        {"stream_name": "stderr", "time": 2.1, "data": "KeyError: 'LotArea'\n"}])
    result = compete.in_process("submit", "kaggle-demo", make_package(tmp_path), "--data", data_dir, "-m", "x")
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "ended in error on Kaggle (Notebook Threw Exception)" in errors[0]
    assert errors[0].endswith("the log ends: KeyError: 'LotArea'") and "nothing submitted" in errors[0]
    assert "log: reading the test set" in result.output
    assert "CreateCodeSubmission" not in kaggle.names()


def test_a_run_still_going_when_the_wait_ends_is_left_unsubmitted_with_the_command(compete, kaggle, rerun, data_dir,
                                                                                  tmp_path, monkeypatch):
    from common.platforms import kaggle_code
    monkeypatch.setattr(kaggle_code, "RUN_WAIT_SECONDS", 0.2)
    kaggle.run["statuses"] = ["RUNNING"]
    result = compete.in_process("submit", "kaggle-demo", make_package(tmp_path), "--data", data_dir, "-m", "slow")
    assert result.exit_code == 2
    assert ("is still running after 0.2 s; nothing submitted; once it completes: kaggle competitions submit "
            f"{SLUG} -f submission.csv -k alice/kaggle-demo-inference -v 1 -m MESSAGE") in result.output
    assert kaggle.names().count("GetKernelSessionStatus") >= 2 and "CreateCodeSubmission" not in kaggle.names()


def test_an_ambiguous_failure_of_the_submit_call_is_not_repeated(compete, kaggle, rerun, data_dir, tmp_path):
    kaggle.applied_then_fail["CreateCodeSubmission"] = (502, "Bad gateway")
    result = compete.in_process("submit", "kaggle-demo", make_package(tmp_path), "--data", data_dir, "-m", "only once")
    assert result.exit_code == 0, result.output
    assert "its submission list shows it, ref 101); not sent again" in result.output
    assert kaggle.names().count("CreateCodeSubmission") == 1 and len(kaggle.submissions) == 1


def test_an_ambiguous_failure_kaggle_does_not_show_is_reported_not_retried(compete, kaggle, rerun, data_dir, tmp_path):
    kaggle.fail["CreateCodeSubmission"] = [(503, "unavailable")] * 5
    result = compete.in_process("submit", "kaggle-demo", make_package(tmp_path), "--data", data_dir, "-m", "maybe")
    assert result.exit_code == 2
    assert "Kaggle does not show it done yet" in result.output and "not sent again" in result.output
    assert kaggle.names().count("CreateCodeSubmission") == 1 and kaggle.submissions == []


def test_a_dataset_created_before_the_connection_dropped_is_not_created_again(compete, kaggle, rerun, data_dir, tmp_path):
    """The client itself sends CreateDataset again after a dropped connection
    (KaggleApi.with_retry); here the first one was applied, so a second would be a
    duplicate request: it must not go."""
    kaggle.applied_then_drop.add("CreateDataset")
    result = compete.in_process("submit", "kaggle-demo", make_package(tmp_path), "--data", data_dir, "-m", "x")
    assert result.exit_code == 0, result.output
    assert kaggle.names().count("CreateDataset") == 1
    assert "dataset alice/kaggle-demo-model: created (Kaggle answered with an error, but now shows it)" in result.output
    assert kaggle.names().count("CreateCodeSubmission") == 1


def test_a_push_failing_after_kaggle_saved_it_is_not_pushed_again(compete, kaggle, rerun, data_dir, tmp_path):
    kaggle.applied_then_fail["SaveKernel"] = (500, "Internal error")
    result = compete.in_process("submit", "kaggle-demo", make_package(tmp_path), "--data", data_dir, "-m", "x")
    assert result.exit_code == 0, result.output
    assert kaggle.names().count("SaveKernel") == 1 and "version 1 pushed (Kaggle answered with an error" in result.output
    assert kaggle.body("CreateCodeSubmission")["kernelVersion"] == 1


def test_dry_run_runs_the_emulation_and_uploads_nothing(compete, kaggle, rerun, data_dir, tmp_path):
    package = make_package(tmp_path)
    before = {path: path.read_bytes() for path in package.rglob("*") if path.is_file()}
    result = compete.in_process("submit", "kaggle-demo", package, "--data", data_dir, "-m", "try", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "rerun emulation: passed" in result.output and "signed in as alice" in result.output
    assert "would fill in OWNER with alice" in result.output
    assert "the kaggle client's own checks accept kernel/kernel-metadata.json and dataset/dataset-metadata.json" in result.output
    assert "dry run: would create dataset alice/kaggle-demo-model, push kernel alice/kaggle-demo-inference" in result.output
    assert not set(kaggle.names()) & {*CREATING, "StartBlobUpload"} and not any(m == "PUT" for m, _, _ in kaggle.calls)
    assert {path: path.read_bytes() for path in package.rglob("*") if path.is_file()} == before


def test_wait_records_the_score_on_the_run_the_package_was_built_from(compete, kaggle, rerun, made_by_a_run, data_dir,
                                                                      tmp_path):
    _, run_dir = made_by_a_run
    kaggle.scoring = [{}, {"status": "COMPLETE", "publicScore": "0.12345"}]
    package = make_package(tmp_path / "built", run_dir=run_dir)
    result = compete.in_process("submit", "kaggle-demo", package, "--data", data_dir, "-m", "scored", "--wait")
    assert result.exit_code == 0, result.output
    assert "public score (rmsle): 0.12345" in result.output and f"recorded as lb_score of run {run_dir.resolve()}" in result.output
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["lb_score"] == 0.12345 and metrics["lb_reference"] == "101"


@pytest.mark.parametrize("change, expected", [
    ({"title": "knl"}, "kernel-metadata.json: the kaggle client refuses it: Title must be at least five characters"),
    ({"language": "julia"}, "kernel-metadata.json: the kaggle client refuses it: A valid language must be specified"),
    ({"dataset_title": "model"}, ("dataset-metadata.json: the kaggle client refuses it: The dataset title must be "
                                  "between 6 and 50 characters")),
    ({"enable_internet": True}, "kernel-metadata.json: enable_internet is true"),
    ({"id": "bob/kaggle-demo-inference"}, "is bob's, but the credentials from KAGGLE_API_TOKEN are alice's"),
    ({"dataset_sources": []}, "the notebook would not see the model files"),
])
def test_a_package_kaggle_would_refuse_is_refused_before_uploading(compete, kaggle, rerun, data_dir, tmp_path, change,
                                                                  expected):
    """What the client's own checks refuse (run on the folders, with no request) or what
    Kaggle would: one line naming the file, and nothing uploaded, not even the dataset."""
    change = dict(change)
    package = make_package(tmp_path, **{key: value for key, value in change.items() if key != "dataset_title"})
    if "dataset_title" in change:
        metadata = package / "dataset" / "dataset-metadata.json"
        metadata.write_text(json.dumps({**json.loads(metadata.read_text()), "title": change["dataset_title"]}))
    result = compete.in_process("submit", "kaggle-demo", package, "--data", data_dir, "-m", "x")
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and expected in errors[0]
    assert not set(kaggle.names()) & {*CREATING, "StartBlobUpload"}


# A notebook as Kaggle's templates write it: the competition's files from /kaggle/input
# (either layout), the model code from the attached dataset, the output to /kaggle/working.
REAL_NOTEBOOK = {"cells": [{"id": f"cell-{number}", "cell_type": "code", "execution_count": None, "metadata": {},
                            "outputs": [], "source": source} for number, source in enumerate([
    "import os, sys\nimport pandas as pd\nsys.path.insert(0, '/kaggle/input/kaggle-demo-model')\nimport helper",
    f"folder = '/kaggle/input/competitions/{SLUG}'\nif not os.path.isdir(folder):\n    folder = '/kaggle/input/{SLUG}'\n"
    "test = pd.read_csv(os.path.join(folder, 'test.csv'))\n"
    "pd.DataFrame({'Id': test.Id, 'SalePrice': helper.predict(test.Id)}).to_csv('/kaggle/working/submission.csv', "
    "index=False)"])],
                 "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
                 "nbformat": 4, "nbformat_minor": 5}


@pytest.fixture
def real_rerun(kaggle, data_dir, monkeypatch):
    """The real rerun emulation (common/runtimes/notebook.py: nbclient in the sandbox) on
    the fake competition's public files."""
    from common.platforms import kaggle_code
    from common.runtimes import runner
    pytest.importorskip("common.runtimes.notebook", reason="the rerun emulation has not landed on this branch")
    if not runner.sandbox_available()[0]:
        pytest.skip("no sandbox here: the rerun emulation cannot run")
    register(DemoKaggle, monkeypatch)
    for name, value in (("RUN_FIRST_POLL", 0.01), ("RUN_POLL", 0.01), ("READY_DELAYS", (0.01,) * 5)):
        monkeypatch.setattr(kaggle_code, name, value)
    (data_dir / "test.csv").write_text("Id,LotArea\n1461,9000\n1462,9100\n1463,9200\n")
    return data_dir


def test_a_package_proven_in_the_real_rerun_is_submitted_and_a_failing_one_is_not(compete, kaggle, real_rerun, tmp_path):
    """The emulation runs the package's notebook offline in the sandbox, reading the
    competition's files and the dataset where Kaggle mounts them; what passes goes to the
    fake, what raises uploads nothing and says Kaggle's name for the failure."""
    package = make_package(tmp_path / "good", notebook=REAL_NOTEBOOK)
    result = compete.in_process("submit", "kaggle-demo", package, "--data", real_rerun, "-m", "the real rerun")
    assert result.exit_code == 0, result.output
    assert "rerun emulation: passed on kaggle-notebook" in result.output
    emulated = tmp_path / "good" / "package.runtime" / "submission.csv"
    assert emulated.read_text().splitlines() == ["Id,SalePrice", "1461,180000.0", "1462,180000.0", "1463,180000.0"]
    assert [kaggle.names().count(rpc) for rpc in CREATING] == [1, 0, 1, 1]

    kaggle.calls.clear()
    broken = make_package(tmp_path / "broken", notebook=REAL_NOTEBOOK,
                          helper="def predict(ids):\n    raise ValueError('no model here')\n")
    failed = compete.in_process("submit", "kaggle-demo", broken, "--data", real_rerun, "-m", "broken")
    assert failed.exit_code == 1
    assert "not uploaded" in failed.output and "Notebook Threw Exception: ValueError: no model here" in failed.output
    assert kaggle.calls == []


def test_a_package_written_by_compete_package_goes_up(compete, kaggle, real_rerun, tmp_path):
    """`compete package --from` writes the folders; they pass the rerun emulation and the
    kaggle client's own checks on their way to the fake."""
    from common import packaging
    if not hasattr(packaging, "build_kaggle_from"):
        pytest.skip("compete package writes no Kaggle package on this branch yet")
    source = tmp_path / "mine"
    source.mkdir()
    notebook = json.loads(json.dumps(REAL_NOTEBOOK))
    notebook["cells"][0]["source"] = notebook["cells"][0]["source"].replace("kaggle-demo-model", "kaggle-demo-compete-model")
    (source / "inference.ipynb").write_text(json.dumps(notebook))
    (source / "helper.py").write_text("def predict(ids):\n    return [180000.0] * len(ids)\n")
    package = tmp_path / "package"
    built = compete.in_process("package", "kaggle-demo", "--from", source, "--profile", "kaggle-notebook", "--out", package)
    assert built.exit_code == 0, built.output
    result = compete.in_process("submit", "kaggle-demo", package, "--data", real_rerun, "-m", "packaged")
    assert result.exit_code == 0, result.output
    assert "rerun emulation: passed on kaggle-notebook" in result.output
    assert [kaggle.names().count(rpc) for rpc in CREATING] == [1, 0, 1, 1]
    pushed = kaggle.body("SaveKernel")
    assert pushed["enableInternet"] is False and pushed["competitionDataSources"] == [SLUG]
    assert kaggle.datasets[pushed["datasetDataSources"][0]]["files"] == ["helper.py"]


def test_a_gzipped_submission_is_validated_as_its_csv_and_uploaded_as_it_is(compete, kaggle, data_dir, good_file, tmp_path):
    """Kaggle's upload takes a .csv.gz (and a zip of one CSV): the file goes as the user gave it."""
    import gzip
    packed = tmp_path / "preds.csv.gz"
    packed.write_bytes(gzip.compress(good_file.read_bytes()))
    result = compete.in_process("submit", "house-prices", packed, "--data", data_dir, "-m", "gz")
    assert result.exit_code == 0, result.output
    assert f"{packed} (gzip): valid" in result.output and "submitted" in result.output
    assert kaggle.uploaded == [packed.read_bytes()]
