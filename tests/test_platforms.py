"""What every platform runner shares: routing, redaction, credential files, downloads
that resume or restart cleanly, and archives checked before they are unpacked."""
from __future__ import annotations

import json
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from common import io
from common import platforms
from competitions import REGISTRY, names
from common.platforms import credentials, errors, kaggle, web


def test_every_competition_routes_to_a_runner_with_the_four_calls():
    for name in names():
        module = platforms.runner(REGISTRY.competition(name))
        assert module.__name__.endswith(REGISTRY.competition(name).platform)
        for call in ("download", "submit", "submissions", "leaderboard"):
            assert callable(getattr(module, call))


def test_unknown_platform_names_the_known_ones():
    class Elsewhere:
        name, platform = "elsewhere", "codalab"
    with pytest.raises(errors.PlatformError, match="known: drivendata, kaggle, zindi"):
        platforms.runner(Elsewhere())


def test_redact_blanks_remembered_secrets_and_credential_shapes():
    errors.remember("hunter2hunter2")
    errors.remember_basic_auth("bob", "k3y-k3y-k3y")
    text = errors.redact("pw hunter2hunter2; Authorization: Basic Ym9iOmszeS1rM3ktazN5; "
                         "GET /files/a.zip?auth_token=zus.v1.abc&x=1; Bearer eyJhbGciOi.payload; "
                         '{"api_key": "0123abcd"} and k3y-k3y-k3y; sort key: day')
    for secret in ("hunter2hunter2", "Ym9iOmszeS1rM3ktazN5", "zus.v1.abc", "eyJhbGciOi", "0123abcd", "k3y-k3y-k3y"):
        assert secret not in text
    assert "auth_token=***&x=1" in text and "Bearer ***" in text and "sort key: day" in text


def test_platform_errors_are_one_redacted_line():
    errors.remember("s3cr3t-value")
    error = errors.LimitError("slug: limit\n reached (s3cr3t-value)")
    assert str(error) == "slug: limit reached (***)"
    assert isinstance(error, io.InputError)


def test_credential_file_readable_by_others_is_refused(tmp_path):
    path = tmp_path / "secret.json"
    path.write_text(json.dumps({"username": "u", "password": "p4ssw0rd"}))
    path.chmod(0o604)
    with pytest.raises(errors.CredentialsError, match=f"chmod 600 {path}"):
        credentials.read_json(path, "username", "password")
    path.chmod(0o600)
    assert credentials.read_json(path, "username", "password")["password"] == "p4ssw0rd"
    with pytest.raises(errors.CredentialsError, match="no token"):
        credentials.read_json(path, "token")


@pytest.fixture
def kaggle_env(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in ("KAGGLE_API_TOKEN", "KAGGLE_CONFIG_DIR", "KAGGLE_USERNAME", "KAGGLE_KEY", "XDG_CONFIG_HOME"):
        monkeypatch.delenv(name, raising=False)
    return home


def _private(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o600)
    return path


def test_kaggle_credentials_follow_the_clients_order(kaggle_env, monkeypatch, tmp_path):
    with pytest.raises(errors.CredentialsError, match="no Kaggle credentials"):
        kaggle.credentials()
    legacy = _private(kaggle_env / ".kaggle" / "kaggle.json", json.dumps({"username": "ann", "key": "filekey123"}))
    assert kaggle.credentials() == kaggle.Credentials(str(legacy), username="ann", key="filekey123")
    monkeypatch.setenv("KAGGLE_USERNAME", "env-ann")
    monkeypatch.setenv("KAGGLE_KEY", "envkey456")
    assert kaggle.credentials().source == "KAGGLE_USERNAME/KAGGLE_KEY"
    token_file = _private(kaggle_env / ".kaggle" / "access_token", "tokenfromfile\n")
    assert kaggle.credentials() == kaggle.Credentials(str(token_file), token="tokenfromfile")
    monkeypatch.setenv("KAGGLE_API_TOKEN", "tokenfromenv")
    assert kaggle.credentials() == kaggle.Credentials("KAGGLE_API_TOKEN", token="tokenfromenv")
    elsewhere = _private(tmp_path / "vault" / "kaggle-token", "tokenbypath")
    monkeypatch.setenv("KAGGLE_API_TOKEN", str(elsewhere))
    assert kaggle.credentials().token == "tokenbypath"
    elsewhere.chmod(0o644)
    with pytest.raises(errors.CredentialsError, match="chmod 600"):
        kaggle.credentials()


def test_kaggle_config_dir_moves_the_folder(kaggle_env, monkeypatch, tmp_path):
    _private(kaggle_env / ".kaggle" / "kaggle.json", json.dumps({"username": "home", "key": "homekey123"}))
    moved = _private(tmp_path / "cfg" / "kaggle.json", json.dumps({"username": "moved", "key": "movedkey123"}))
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(moved.parent))
    assert kaggle.credentials().username == "moved"
    monkeypatch.delenv("KAGGLE_CONFIG_DIR")
    (kaggle_env / ".kaggle" / "kaggle.json").unlink()
    (kaggle_env / ".kaggle").rmdir()
    xdg = _private(kaggle_env / ".config" / "kaggle" / "kaggle.json", json.dumps({"username": "xdg", "key": "xdgkey1234"}))
    assert kaggle.credentials().source == str(xdg)


class Versioned(ThreadingHTTPServer):
    """Serves one file with an ETag; can change it between requests or cut a transfer."""

    daemon_threads = True

    def __init__(self, data: bytes):
        super().__init__(("127.0.0.1", 0), VersionedHandler)
        self.data, self.version, self.cut, self.requests = data, 1, False, []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/file.bin"


class VersionedHandler(BaseHTTPRequestHandler):
    server: Versioned

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.server.requests.append(dict(self.headers))
        data, etag = self.server.data, f'"v{self.server.version}"'
        start = 0
        if self.headers.get("Range") and self.headers.get("If-Range") == etag:
            start = int(self.headers["Range"].split("=")[1].rstrip("-"))
        self.send_response(206 if start else 200)
        self.send_header("ETag", etag)
        self.send_header("Content-Length", str(len(data) - start))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        if self.server.cut:
            self.wfile.write(data[start:start + (len(data) - start) // 2])
            self.wfile.flush()
            self.connection.shutdown(2)
            return
        self.wfile.write(data[start:])


@pytest.fixture
def versioned(monkeypatch):
    server = Versioned(bytes(range(256)) * 2000)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    monkeypatch.setattr(web, "RETRY_DELAYS", (0.01,))
    yield server
    server.shutdown()
    server.server_close()


def _fetch(server: Versioned, target: Path) -> Path:
    import requests
    return web.download(requests.Session(), server.url, target, quiet=True,
                        explain=lambda error: web.explain_transport(error, "test", "127.0.0.1") or errors.PlatformError(error))


def test_a_partial_of_a_file_that_changed_restarts_from_zero(versioned, tmp_path):
    target = tmp_path / "file.bin"
    versioned.cut = True
    with pytest.raises(errors.NetworkError, match="run the same command again to resume"):
        _fetch(versioned, target)
    assert (tmp_path / "file.bin.part").stat().st_size > 0 and not target.exists()
    versioned.cut = False
    versioned.version, versioned.data = 2, bytes(range(255, -1, -1)) * 2100  # the platform replaced the file
    _fetch(versioned, target)
    assert versioned.requests[-1]["If-Range"] == '"v1"'  # asked to resume the old version...
    assert target.read_bytes() == versioned.data         # ...got and kept the new one whole
    assert not list(tmp_path.glob("*.part*"))


def test_a_finished_download_replaces_the_target_atomically(versioned, tmp_path):
    target = tmp_path / "file.bin"
    target.write_bytes(b"old")
    versioned.cut = True
    with pytest.raises(errors.NetworkError):
        _fetch(versioned, target)
    assert target.read_bytes() == b"old"  # never half a file where a finished one is expected
    versioned.cut = False
    _fetch(versioned, target)
    assert target.read_bytes() == versioned.data


def test_unpack_checks_member_checksums_and_drops_a_damaged_archive(tmp_path):
    archive = tmp_path / "data.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as opened:
        opened.writestr("train.csv", "a,b\n" + "1,2\n" * 1000)
    raw = bytearray(archive.read_bytes())
    raw[200] ^= 0xFF  # one flipped byte inside the member's data
    archive.write_bytes(bytes(raw))
    with pytest.raises(errors.PlatformError, match=r"train.csv fails its check\); deleted it"):
        web.unpack(archive, tmp_path / "out")
    assert not archive.exists() and not (tmp_path / "out" / "train.csv").exists()
    archive.write_bytes(b"PK\x03\x04truncated")
    with pytest.raises(errors.PlatformError, match="damaged download"):
        web.unpack(archive, tmp_path / "out")


def test_unpack_refuses_a_path_that_escapes(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as opened:
        opened.writestr("../../outside.txt", "gotcha")
    with pytest.raises(io.InputError, match="escapes"):
        web.unpack(archive, tmp_path / "out")
    assert not (tmp_path / "outside.txt").exists()
