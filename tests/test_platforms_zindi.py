"""The Zindi runner against a local server speaking the endpoints it calls."""
from __future__ import annotations

import email
import io as bytes_io
import json
import logging
import threading
import zipfile
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

import competitions as registry
from common.metrics import MULTICLASS_LOG_LOSS
from common import platforms
from common.platforms import web
from common.submission import SubmissionFormat
from conftest import SampleEcho, label_table, register, submission_of_a_run

SLUG = "fowl-escapades"
USER, PASSWORD = "amina", "correct-horse-battery-staple"
TOKEN = "zus.v1.AbCdEf1.9ZyXwVuTsRqPoNmLkJiHgFeDcBa"
SAMPLE = "ID,Ring-necked Dove,Cape Batis\nA1B2C3,0.5,0.5\nD4E5F6,0.5,0.5\n"


class DemoZindi(SampleEcho):
    name = "zindi-demo"
    platform = "zindi"
    slug = SLUG
    metric = MULTICLASS_LOG_LOSS
    submission = SubmissionFormat("SampleSubmission.csv", id_column="ID", domain="probability")


def _audio_zip() -> bytes:
    buffer = bytes_io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("Train/A1B2C3.mp3", bytes(range(256)) * 4000)
        archive.writestr("Train/D4E5F6.mp3", bytes(range(255, -1, -1)) * 4000)
    return buffer.getvalue()


class FakeZindi(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), ZindiHandler)
        self.calls: list[tuple[str, str, dict, str]] = []   # method, route, headers, query
        self.fail: dict[str, list[tuple[int, object]]] = {}  # route -> answers to give first
        self.record_then: str | None = None                 # after recording an upload: "502" or "drop"
        self.cut_every_transfer = 0                          # transfers to cut half-way
        self.files = {"Train.csv": b"ID,common_name\nA1B2C3,Cape Batis\nD4E5F6,Ring-necked Dove\n" * 40000,
                      "SampleSubmission.csv": SAMPLE.encode(), "Train.zip": _audio_zip()}
        self.uploads: list[dict] = []
        self.per_day = 5                   # the Rules page's "maximum of N submissions per day"
        self.rules = None                  # the Rules page's HTML, when a test sets its own
        self.earlier: list[dict] = []      # submissions already on the board
        self.echo_token = False
        self.lists_lag = 0  # how many listings still miss the newest upload
        self.scoring: list[dict] = []  # one per listing: what the newest upload shows then (the last one stays)
        self.newest: dict = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def routes(self) -> list[str]:
        return [route for _, route, _, _ in self.calls]


class ZindiHandler(BaseHTTPRequestHandler):
    server: FakeZindi

    def log_message(self, *args):
        pass

    def _json(self, status: int, data) -> None:
        body = json.dumps({"data": data}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _route(self) -> tuple[str, list[str], dict]:
        split = urlsplit(self.path)
        parts = [unquote(p) for p in split.path.split("/")[2:]]  # after /v1/
        query = parse_qs(split.query)
        if parts[:2] == ["auth", "signin"]:
            return "signin", parts, query
        rest = parts[2:]
        if not rest:
            return "competition", parts, query
        if rest[0] == "files":
            return "files", parts, query
        return {"submissions": "submissions" if self.command == "GET" else "submit",
                "participations": "participations"}.get(rest[0], "unknown"), parts, query

    def _refuse_first(self, route: str) -> bool:
        queued = self.server.fail.get(route)
        if not queued:
            return False
        status, message = queued.pop(0)
        if self.server.echo_token:
            message = f"{message} (token {self.headers.get('auth-token')})"
        self._json(status, {"errors": {"message": message}})
        return True

    def _signed_in(self, query) -> bool:
        if self.headers.get("auth-token") == TOKEN:
            return True
        self._json(401, {"errors": {"message": "Token expired or invalid"}})
        return False

    def do_POST(self):
        route, parts, query = self._route()
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        self.server.calls.append(("POST", route, dict(self.headers), urlsplit(self.path).query))
        if self._refuse_first(route):
            return
        if route == "signin":
            form = parse_qs(body.decode())
            if form.get("username") == [USER] and form.get("password") == [PASSWORD]:
                return self._json(200, {"auth_token": TOKEN, "user": {"username": USER}})
            return self._json(401, {"errors": {"message": "Invalid username or password"}})
        if not self._signed_in(query):
            return
        if route == "submit":
            message = email.message_from_bytes(b"Content-Type: " + self.headers["Content-Type"].encode() + b"\r\n\r\n" + body)
            fields = {part.get_param("name", header="content-disposition"): part for part in message.get_payload()}
            self.server.uploads.append({"comment": fields["comment"].get_payload(decode=True).decode(),
                                        "filename": fields["file"].get_filename(),
                                        "content": fields["file"].get_payload(decode=True)})
            if self.server.record_then == "502":
                return self._json(502, {"errors": {"message": "Bad gateway"}})
            if self.server.record_then == "drop":
                self.connection.shutdown(2)
                return
            return self._json(200, {"id": f"sub{len(self.server.uploads)}"})
        self._json(404, {"errors": {"message": "not found"}})

    def do_GET(self):
        route, parts, query = self._route()
        self.server.calls.append(("GET", route, dict(self.headers), urlsplit(self.path).query))
        if self._refuse_first(route):
            return
        if not self._signed_in(query):
            return
        if parts[1] != SLUG:
            return self._json(404, {"errors": {"message": "Competition not found"}})
        if route == "competition":
            rules = self.server.rules if self.server.rules is not None else (
                f"<h2>Submissions</h2><p>You may make a maximum of {self.server.per_day} submissions per day.</p>"
                "<p>You may make a maximum of 100 submissions for this competition.</p>")
            return self._json(200, {"id": SLUG, "datafiles": [
                {"filename": name, "size": len(data)} if name == "Train.csv" else {"filename": name}
                for name, data in self.server.files.items()],
                "pages": [{"title": "Description", "content_html": "<p>Birds.</p>"},
                          {"title": "Rules", "content_html": rules}]})
        if route == "submissions":
            uploads = self.server.uploads
            if self.server.lists_lag:
                self.server.lists_lag -= 1
                uploads = uploads[:-1]
            now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
            if self.server.scoring and uploads:
                self.server.newest = self.server.scoring.pop(0)
            rows = [{"id": f"sub{i + 1}", "filename": u["filename"], "comment": u["comment"], "created_at": now,
                     "status": "successful", "public_score": 1.25 + i, "private_score": None}
                    for i, u in enumerate(uploads)]
            if rows:
                rows[-1].update(self.server.newest)
            return self._json(200, self.server.earlier + rows)
        if route == "participations":
            return self._json(200, [
                {"public_rank": 2, "best_public_score": 1.40, "user": {"username": "kofi"}, "submission_count": 9},
                {"public_rank": 1, "best_public_score": 1.006, "team": {"title": "birders"}, "submission_count": 31}])
        if route == "files":
            if query.get("auth_token") != [TOKEN]:
                return self._json(403, {"errors": {"message": "You must join the competition to download its data"}})
            return self._file(parts[-1])
        self._json(404, {"errors": {"message": "not found"}})

    def _file(self, name: str) -> None:
        data = self.server.files[name]
        start = 0
        if self.headers.get("Range") and self.headers.get("If-Range") == '"v1"':
            start = int(self.headers["Range"].split("=")[1].split("-")[0])
        self.send_response(206 if start else 200)
        self.send_header("ETag", '"v1"')
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(len(data) - start))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        if self.server.cut_every_transfer:
            self.server.cut_every_transfer -= 1
            self.wfile.write(data[start:start + (len(data) - start) // 2])
            self.wfile.flush()
            self.connection.shutdown(2)
            return
        self.wfile.write(data[start:])


@pytest.fixture
def zindi(tmp_path, monkeypatch):
    server = FakeZindi()
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ZINDI_API_URL", server.url)
    monkeypatch.setenv("ZINDI_USERNAME", USER)
    monkeypatch.setenv("ZINDI_PASSWORD", PASSWORD)
    monkeypatch.delenv("ZINDI_CONFIG_DIR", raising=False)
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(web, "RETRY_DELAYS", (0.01, 0.01, 0.01))
    register(DemoZindi, monkeypatch)
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def data_dir(tmp_path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "SampleSubmission.csv").write_text(SAMPLE)
    return folder


@pytest.fixture
def good_file(tmp_path) -> Path:
    path = tmp_path / "birds.csv"
    path.write_text("ID,Ring-necked Dove,Cape Batis\nD4E5F6,0.9,0.1\nA1B2C3,0.2,0.8\n")
    return path


def error_lines(result) -> list[str]:
    return [line for line in result.output.splitlines() if line.startswith("error:")]


def test_download_lands_every_file_and_unpacks_zips(compete, zindi, tmp_path):
    out = tmp_path / "birds"
    result = compete.in_process("data", "download", "zindi-demo", "--out", out, "--quiet")
    assert result.exit_code == 0, result.output
    assert (out / "Train.csv").read_bytes() == zindi.files["Train.csv"]
    assert (out / "SampleSubmission.csv").read_text() == SAMPLE
    assert (out / "Train" / "A1B2C3.mp3").read_bytes() == bytes(range(256)) * 4000
    assert (out / "Train.zip").is_file()  # kept as Zindi ships it
    assert not list(out.glob("*.part*"))
    assert zindi.routes()[:2] == ["signin", "competition"]


@pytest.fixture(scope="module")
def uberct_files(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("uberct")
    registry.REGISTRY.competition("uberct").synth(out, seed=0, scale="small")
    return out


def test_downloaded_files_load_as_compete_run_reads_them(compete, zindi, uberct_files, tmp_path, monkeypatch):
    """A real competition's files served as Zindi lists them (the shapefile zipped): the
    folder `data download` leaves is one the competition's loader reads unchanged."""
    uberct = registry.REGISTRY.competition("uberct")
    zindi.files = {path.name: path.read_bytes() for path in sorted(uberct_files.iterdir()) if path.is_file()}
    monkeypatch.setattr(type(uberct), "slug", SLUG)
    out = tmp_path / "uberct"
    result = compete.in_process("data", "download", "uberct", "--out", out, "--quiet")
    assert result.exit_code == 0, result.output
    assert (out / "road_segments.zip").is_file() and list(out.glob("*.shp"))
    loaded = uberct.load(out)
    assert loaded is not None
    assert compete.in_process("validate", "uberct", out / "SampleSubmission.csv", "--data", out).exit_code == 0


def test_download_interrupted_half_way_resumes(compete, zindi, tmp_path):
    zindi.cut_every_transfer = 1
    out = tmp_path / "birds"
    assert compete.in_process("data", "download", "zindi-demo", "--out", out, "--quiet").exit_code == 0
    transfers = [headers for method, route, headers, _ in zindi.calls if route == "files"]
    assert "Range" not in transfers[0]
    resumed = int(transfers[1]["Range"].split("=")[1].rstrip("-"))
    assert 0 < resumed < len(zindi.files["Train.csv"]) and transfers[1]["If-Range"] == '"v1"'
    assert (out / "Train.csv").read_bytes() == zindi.files["Train.csv"]


def test_a_flaky_transfer_that_moves_forward_is_continued(compete, zindi, tmp_path):
    zindi.cut_every_transfer = len(web.RETRY_DELAYS) + 1  # more cuts than retries, each one further along
    out = tmp_path / "birds"
    assert compete.in_process("data", "download", "zindi-demo", "--out", out, "--quiet").exit_code == 0
    assert (out / "Train.csv").read_bytes() == zindi.files["Train.csv"]


def test_download_resumes_across_runs(compete, zindi, tmp_path):
    """Every try of the first run is cut: it gives up, keeping the bytes it got; the next
    run continues from there instead of starting over."""
    zindi.cut_every_transfer = web.MAX_RESUMES + len(web.RETRY_DELAYS) + 1
    out = tmp_path / "birds"
    first = compete.in_process("data", "download", "zindi-demo", "--out", out, "--quiet")
    assert first.exit_code == 2
    assert "run the same command again to resume" in error_lines(first)[0]
    kept = (out / "Train.csv.part").stat().st_size
    assert kept > len(zindi.files["Train.csv"]) // 2
    zindi.cut_every_transfer = 0
    second = compete.in_process("data", "download", "zindi-demo", "--out", out, "--quiet")
    assert second.exit_code == 0, second.output
    last = [headers for method, route, headers, _ in zindi.calls if route == "files"][-3]
    assert last["Range"] == f"bytes={kept}-"
    assert (out / "Train.csv").read_bytes() == zindi.files["Train.csv"]


def test_submit_sends_the_file_and_comment_once(compete, zindi, data_dir, good_file):
    result = compete.in_process("submit", "zindi-demo", good_file, "--data", data_dir, "-m", "cnn + mixup")
    assert result.exit_code == 0, result.output
    assert "submitted" in result.output and "sub1" in result.output
    assert len(zindi.uploads) == 1
    assert zindi.uploads[0]["comment"] == "cnn + mixup"
    assert zindi.uploads[0]["content"] == good_file.read_bytes()


def test_invalid_file_is_refused_before_any_request(compete, zindi, data_dir, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("ID,Cape Batis,Ring-necked Dove\nA1B2C3,1.5,0\n")
    result = compete.in_process("submit", "zindi-demo", bad, "--data", data_dir, "-m", "x")
    assert result.exit_code == 1 and "not submitted" in result.output and "header" in result.output
    assert zindi.calls == []


def _board_entry(hours_ago: float, status: str = "successful") -> dict:
    when = (datetime.now(timezone.utc) - timedelta(hours=hours_ago)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return {"id": f"old{hours_ago}", "filename": "old.csv", "comment": "", "created_at": when, "status": status,
            "public_score": 2.0, "private_score": None}


def test_dry_run_reads_the_allowance_from_the_rules_page_and_the_board(compete, zindi, data_dir, good_file):
    """The allowance as the public client reads it: the Rules page's daily maximum less
    the board's counted submissions of the last 24 hours; no "limits" endpoint is asked."""
    zindi.earlier = [_board_entry(1), _board_entry(3, "initial"), _board_entry(5, "failed"), _board_entry(30)]
    result = compete.in_process("submit", "zindi-demo", good_file, "--data", data_dir, "-m", "x", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "dry run" in result.output and "3 submission(s) left today (5 a day)" in result.output
    assert zindi.routes() == ["signin", "competition", "submissions"] and zindi.uploads == []


def test_rules_page_without_a_daily_maximum_means_allowance_unknown(compete, zindi, data_dir, good_file):
    zindi.rules = "<p>Submissions are scored on 30% of the test set.</p>"
    result = compete.in_process("submit", "zindi-demo", good_file, "--data", data_dir, "-m", "x", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "allowance unknown" in result.output
    assert zindi.routes() == ["signin", "competition"]
    assert compete.in_process("submit", "zindi-demo", good_file, "--data", data_dir, "-m", "x").exit_code == 0
    assert len(zindi.uploads) == 1


@pytest.mark.parametrize("route, status, message, expected", [
    ("submit", 403, "You must join the competition before submitting", "not joined"),
    ("submit", 400, "You have reached the maximum number of submissions for today", "daily submission limit"),
    ("competition", 404, "Competition not found", "knows no competition"),
    ("signin", 401, "Invalid username or password", "refused the sign-in"),
    ("competition", 401, "Token expired", "refused the session"),
])
def test_known_refusals_are_one_line(compete, zindi, data_dir, good_file, route, status, message, expected):
    zindi.fail[route] = [(status, message)]
    result = compete.in_process("submit", "zindi-demo", good_file, "--data", data_dir, "-m", "x")
    assert result.exit_code == 2
    assert len(error_lines(result)) == 1 and expected in error_lines(result)[0]
    assert "Traceback" not in result.output


def test_refusal_inside_a_200_answer(compete, zindi, data_dir, good_file):
    zindi.fail["submit"] = [(200, "You must accept the rules of this competition")]
    result = compete.in_process("submit", "zindi-demo", good_file, "--data", data_dir, "-m", "x")
    assert result.exit_code == 2 and "rules not accepted" in error_lines(result)[0]


def test_no_allowance_left_is_refused_before_uploading(compete, zindi, data_dir, good_file):
    zindi.per_day = 2
    zindi.earlier = [_board_entry(2), _board_entry(20)]
    result = compete.in_process("submit", "zindi-demo", good_file, "--data", data_dir, "-m", "x")
    assert result.exit_code == 2 and "daily submission limit" in result.output and "2 of 2" in result.output
    assert "submit" not in zindi.routes()


def test_wrong_slug_on_download(compete, zindi, tmp_path, monkeypatch):
    monkeypatch.setattr(DemoZindi, "slug", "fowl-escapade")
    result = compete.in_process("data", "download", "zindi-demo", "--out", tmp_path / "x")
    assert result.exit_code == 2 and "knows no competition" in result.output and "fowl-escapade" in result.output


def test_not_joined_on_download(compete, zindi, tmp_path):
    zindi.fail["files"] = [(403, "You must join the competition to download its data")]
    result = compete.in_process("data", "download", "zindi-demo", "--out", tmp_path / "x")
    assert result.exit_code == 2
    assert error_lines(result) == [f"error: {SLUG}: competition not joined or rules not accepted (You must join the "
                                   f"competition to download its data); join it at https://zindi.africa/competitions/"
                                   f"{SLUG} (this accepts its rules), then try again"]


def test_network_down(compete, zindi, monkeypatch):
    closed = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    monkeypatch.setenv("ZINDI_API_URL", f"http://127.0.0.1:{closed.server_address[1]}")
    closed.server_close()
    result = compete.in_process("leaderboard", "zindi-demo")
    assert result.exit_code == 2 and "cannot reach Zindi" in result.output and "connection refused" in result.output


def test_server_errors_on_reads_are_retried(compete, zindi):
    zindi.fail["participations"] = [(503, "busy")] * 2
    assert compete.in_process("leaderboard", "zindi-demo").exit_code == 0
    assert zindi.routes().count("participations") == 3
    zindi.fail["participations"] = [(500, "boom")] * 10
    result = compete.in_process("leaderboard", "zindi-demo")
    assert result.exit_code == 2 and "server error" in result.output


@pytest.mark.parametrize("failure", ["502", "drop"])
def test_failed_answer_after_recording_is_not_resubmitted(compete, zindi, data_dir, good_file, failure):
    zindi.record_then = failure
    result = compete.in_process("submit", "zindi-demo", good_file, "--data", data_dir, "-m", "only once")
    assert result.exit_code == 0, result.output
    assert "not sent again" in result.output
    assert zindi.routes().count("submit") == 1 and len(zindi.uploads) == 1


def test_a_submission_listed_only_a_moment_later_is_found(compete, zindi, data_dir, good_file):
    zindi.record_then, zindi.lists_lag = "502", 2
    result = compete.in_process("submit", "zindi-demo", good_file, "--data", data_dir, "-m", "slow list")
    assert result.exit_code == 0, result.output
    assert "not sent again" in result.output
    assert zindi.routes().count("submissions") == 3 and len(zindi.uploads) == 1


def test_ambiguous_failure_not_listed_is_reported_not_retried(compete, zindi, data_dir, good_file):
    zindi.fail["submit"] = [(502, "Bad gateway")] * 3
    result = compete.in_process("submit", "zindi-demo", good_file, "--data", data_dir, "-m", "maybe")
    assert result.exit_code == 2
    assert "double submission" in error_lines(result)[0]
    assert zindi.routes().count("submit") == 1


def test_submissions_and_leaderboard_tables(compete, zindi, data_dir, good_file):
    assert compete.in_process("submit", "zindi-demo", good_file, "--data", data_dir, "-m", "first").exit_code == 0
    listed = compete.in_process("submissions", "zindi-demo")
    assert listed.exit_code == 0 and "first" in listed.output and "birds.csv" in listed.output and "1.25" in listed.output
    board = compete.in_process("leaderboard", "zindi-demo").output.splitlines()
    assert "birders" in board[1] and "1.006" in board[1] and "kofi" in board[2]


def test_credentials_file_must_be_private(compete, zindi, tmp_path, monkeypatch):
    for name in ("ZINDI_USERNAME", "ZINDI_PASSWORD"):
        monkeypatch.delenv(name)
    folder = tmp_path / "home" / ".zindi"
    folder.mkdir(parents=True)
    path = folder / "zindi.json"
    path.write_text(json.dumps({"username": USER, "password": PASSWORD}))
    path.chmod(0o640)
    refused = compete.in_process("leaderboard", "zindi-demo")
    assert refused.exit_code == 2 and f"chmod 600 {path}" in refused.output and PASSWORD not in refused.output
    assert zindi.calls == []
    path.chmod(0o600)
    assert compete.in_process("leaderboard", "zindi-demo").exit_code == 0


def test_missing_credentials(compete, zindi, monkeypatch):
    monkeypatch.delenv("ZINDI_PASSWORD")
    result = compete.in_process("submissions", "zindi-demo")
    assert result.exit_code == 2 and "ZINDI_USERNAME and ZINDI_PASSWORD" in result.output


def test_password_and_token_never_reach_output_logs_or_errors(compete, zindi, tmp_path, data_dir, good_file):
    """The server echoes the session token into its refusals, the token rides in the
    transfer URLs, and every logger writes at DEBUG: neither secret may show anywhere."""
    zindi.echo_token = True
    zindi.fail["submit"] = [(400, "Malformed upload")]
    log_file = tmp_path / "debug.log"
    handler = logging.FileHandler(log_file)
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        downloaded = compete.in_process("data", "download", "zindi-demo", "--out", tmp_path / "birds")
        refused = compete.in_process("submit", "zindi-demo", good_file, "--data", data_dir, "-m", "x")
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
        handler.close()
    assert downloaded.exit_code == 0 and refused.exit_code == 2
    assert "Malformed upload (token ***)" in refused.output
    logged = log_file.read_text()
    assert "auth_token=***" in logged  # the transfer URLs were logged, blanked
    for secret in (TOKEN, PASSWORD):
        assert secret not in downloaded.output + refused.output + logged
    from common.platforms import zindi as runner
    zindi.fail["participations"] = [(403, "Forbidden")]
    with pytest.raises(Exception) as caught:
        runner.leaderboard(DemoZindi())
    assert "token ***" in str(caught.value) and TOKEN not in str(caught.value)


@pytest.fixture
def made_by_a_run(zindi, data_dir, tmp_path, monkeypatch) -> tuple[Path, Path]:
    """A submission file from a real `compete run`, and the run directory that made it."""
    return submission_of_a_run("zindi-demo", data_dir, tmp_path, monkeypatch)


def looks_after_the_upload(zindi) -> int:
    routes = zindi.routes()
    return routes[routes.index("submit"):].count("submissions")


def test_submit_wait_prints_the_public_score_and_records_it_on_the_run(compete, zindi, made_by_a_run, data_dir):
    import mlflow
    file, run_dir = made_by_a_run
    zindi.scoring = [{"status": "initial", "public_score": None}, {}]  # scored at the second look
    result = compete.in_process("submit", "zindi-demo", file, "--data", data_dir, "-m", "wait for it", "--wait")
    assert result.exit_code == 0, result.output
    assert "public score (log_loss): 1.25" in result.output and f"recorded as lb_score of run {run_dir}" in result.output
    assert looks_after_the_upload(zindi) == 2
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["lb_score"] == 1.25 and metrics["lb_reference"] == "sub1"
    assert mlflow.MlflowClient().get_run(metrics["mlflow_run_id"]).data.metrics["lb_score"] == 1.25


def test_submit_wait_gives_up_on_a_submission_still_pending(compete, zindi, made_by_a_run, data_dir):
    file, run_dir = made_by_a_run
    zindi.scoring = [{"status": "initial", "public_score": None}]
    result = compete.in_process("submit", "zindi-demo", file, "--data", data_dir, "-m", "slow", "--wait")
    assert result.exit_code == 1
    assert "submitted" in result.output and "is not scored yet: still initial" in error_lines(result)[0]
    assert looks_after_the_upload(zindi) == 1 + len(platforms.SCORE_DELAYS) and len(zindi.uploads) == 1
    assert "lb_score" not in json.loads((run_dir / "metrics.json").read_text())


def test_submit_wait_reports_a_submission_zindi_could_not_score(compete, zindi, made_by_a_run, data_dir):
    file, run_dir = made_by_a_run
    zindi.scoring = [{"status": "failed", "public_score": None, "error": "Missing ID D4E5F6"}]
    result = compete.in_process("submit", "zindi-demo", file, "--data", data_dir, "-m", "broken", "--wait")
    assert result.exit_code == 1
    assert "was not scored: status 'failed': Missing ID D4E5F6" in error_lines(result)[0]
    assert "lb_score" not in json.loads((run_dir / "metrics.json").read_text())


def test_submit_wait_names_the_metric_of_a_platform_slug_folder(compete, zindi, tmp_path, monkeypatch):
    """A `zindi:SLUG` competition's metric is read from its folder: the score line names
    that one, not the generic class's placeholder."""
    from competitions import REGISTRY
    monkeypatch.setattr(platforms, "SCORE_DELAYS", (0.01,) * 3)
    folder = label_table(tmp_path / "table", ("Train.csv", "Test.csv", "SampleSubmission.csv"), "ID", "target", 40)
    file = tmp_path / "labels.csv"
    file.write_text("ID,target\n" + "".join(f"{100 + i},yes\n" for i in range(40)))
    name = f"zindi:{SLUG}"
    competition = REGISTRY.competition(name)
    expected = competition.metric_for(competition.data_for_format(folder)).name
    assert expected != competition.metric.name  # the folder's labels are not the placeholder's regression
    zindi.scoring = [{}]
    result = compete.in_process("submit", name, file, "--data", folder, "-m", "labels", "--wait")
    assert result.exit_code == 0, result.output
    assert f"public score ({expected}): 1.25" in result.output


@pytest.mark.parametrize("kind", ["gzip", "zip"])
def test_a_compressed_file_goes_to_zindi_as_its_plain_csv(compete, zindi, data_dir, good_file, tmp_path, kind):
    """Zindi's upload takes a plain CSV (its public client refuses other extensions): a
    .csv.gz or a zip of one CSV is validated as what it holds and sent decompressed, saying so."""
    import gzip
    if kind == "gzip":
        packed = tmp_path / "birds.csv.gz"
        packed.write_bytes(gzip.compress(good_file.read_bytes()))
    else:
        packed = tmp_path / "birds.zip"
        with zipfile.ZipFile(packed, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.write(good_file, "birds.csv")
    result = compete.in_process("submit", "zindi-demo", packed, "--data", data_dir, "-m", "packed")
    assert result.exit_code == 0, result.output
    assert f"{packed} ({kind}): valid" in result.output
    assert "Zindi takes a plain CSV" in result.output and "uploaded decompressed, as birds.csv" in result.output
    assert len(zindi.uploads) == 1
    assert zindi.uploads[0]["filename"] == "birds.csv" and zindi.uploads[0]["content"] == good_file.read_bytes()
