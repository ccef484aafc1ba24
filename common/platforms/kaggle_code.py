"""Kaggle code submissions: a package folder proved in the rerun emulation, then uploaded
and submitted through the official client, the calls its CLI makes for `kaggle datasets
create/version`, `kernels push`, `kernels status`, `kernels output`, `kernels logs` and
`competitions submit -k -v` (kaggle/api/kaggle_api_extended.py, kaggle 2.2.5).

The package (`compete package COMP ... --profile kaggle-notebook`) holds
compete-package.json (read by common.runtimes.runner.read_manifest), `kernel/`
(kernel-metadata.json and the notebook) and `dataset/` (dataset-metadata.json, the model
files and the vendored code). `submit` goes, printing a line per step:

1. the rerun emulation (runner.run_test): a package that fails it is not uploaded;
2. the account: whose the credentials are (the metadata's placeholder owner `OWNER` is
   filled in with that name, in the package's own files), and the competition's
   allowance (none left, or the rules not accepted: nothing is uploaded);
3. the dataset: created (`datasets create -p DIR/dataset -r zip`), or versioned when it
   exists (`datasets version -p DIR/dataset -m MSG -r zip`), then waited for until Kaggle
   has it ready, since a kernel started earlier would mount the previous version;
4. the kernel pushed (`kernels push -p DIR/kernel`), which starts its run;
5. that version's run followed (`kernels status`) for as long as a Kaggle session may
   last; a failed run is reported with the last lines of its log (`kernels logs`);
6. its output fetched (`kernels output`, that file alone), validated against the sample
   in the data folder, and the version submitted (`competitions submit SLUG -f OUTPUT
   -k OWNER/KERNEL -v VERSION -m MSG`).

Retries. Reads are retried with backoff. A request that creates something (a dataset, a
dataset version, a kernel version, a submission) is tried again only when it surely
changed nothing: it never reached Kaggle (connection refused, no address), Kaggle asked to
slow down (429), or what failed came before it (a file upload). After any other failure
(a timeout, a dropped connection, a 5xx) what Kaggle now shows decides: the dataset
exists, its version or the kernel's moved on, the submission is listed; if it shows
nothing, one line says what to check, and nothing is sent again. For that reason the
client's own retry of the dataset-creating requests on a dropped connection
(`KaggleApi.with_retry` around `create_dataset` and `create_dataset_version` in
dataset_create_new / dataset_create_version) is turned off here.
"""
from __future__ import annotations

import json
import logging
import re
import shutil
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from common import io
from common.platforms import Receipt, find_submission, kaggle, web
from common.platforms.errors import (AccessError, CredentialsError, PlatformError, RuntimeTestFailed,
                                     UncertainSubmission)

log = logging.getLogger("compete")

PLACEHOLDER = "OWNER"   # the owner `compete package` writes when the credentials name no user
KERNEL_METADATA = "kernel-metadata.json"
DATASET_METADATA = "dataset-metadata.json"
# The RPCs that create something (kagglesdk's service methods, named as in the request URL).
CREATING = ("CreateDataset", "CreateDatasetVersion", "CreateDatasetVersionById", "SaveKernel", "CreateCodeSubmission")
CREATE_ATTEMPTS = 3       # tries of a creating step whose failures surely changed nothing
READY_DELAYS = (2.0, 4.0, 8.0, 15.0) + (30.0,) * 20   # ~10 min for Kaggle to process a dataset version
RUN_FIRST_POLL, RUN_POLL = 10.0, 60.0                  # seconds between two looks at a kernel's run
RUN_WAIT_SECONDS = 13 * 3600   # Kaggle ends a notebook session after 12 h; an hour more for the queue
LOG_LINES = 5             # the end of a failed run's log, as printed


class KernelFailed(PlatformError, io.CheckFailed):
    """The kernel's run on Kaggle failed, or wrote no output: a failed check (exit 1)."""


@dataclass
class Package:
    root: Path
    slug: str
    kernel: Path                 # the folder `kernels push -p` takes
    dataset: Path | None         # the folder `datasets create -p` takes; None: the package has none
    output: str                  # the file the notebook writes into /kaggle/working, submitted
    profile: str | None
    run_dir: Path | None         # the run it was built from, where the score is recorded

    @property
    def kernel_metadata(self) -> Path:
        return self.kernel / KERNEL_METADATA

    @property
    def dataset_metadata(self) -> Path | None:
        return self.dataset / DATASET_METADATA if self.dataset is not None else None


def read_package(root: Path, competition) -> Package:
    from common.runtimes import runner

    manifest_path = Path(root) / runner.PACKAGE_MANIFEST
    manifest = runner.read_manifest(Path(root)) or {}
    if not isinstance(manifest, dict):
        raise io.InputError(f"{manifest_path}: not a JSON object")
    if manifest.get("platform", "kaggle") != "kaggle":
        raise io.InputError(f"{manifest_path}: a package for {manifest['platform']}, not for Kaggle")
    slug = manifest.get("slug") or competition.slug
    if slug != competition.slug:
        raise io.InputError(f"{manifest_path}: built for the competition {slug!r}, not {competition.slug!r} "
                            f"({competition.name})")
    kernel = Path(root) / manifest.get("kernel", "kernel")
    if not (kernel / KERNEL_METADATA).is_file():
        raise io.InputError(f"{kernel / KERNEL_METADATA}: not found; a Kaggle package holds its kernel folder there "
                            f"(`compete package {competition.name} ... --profile kaggle-notebook` writes one)")
    name = manifest.get("dataset", "dataset")   # null: the package has no dataset
    dataset = Path(root) / name if name else None
    if dataset is not None and not dataset.exists():
        dataset = None
    if dataset is not None and not (dataset / DATASET_METADATA).is_file():
        raise io.InputError(f"{dataset / DATASET_METADATA}: not found; the dataset folder needs it for `datasets create`")
    return Package(Path(root), slug, kernel, dataset, str(manifest.get("output") or "submission.csv"),
                   manifest.get("profile"), built_from(manifest, competition))


def built_from(manifest: dict, competition) -> Path | None:
    """The run the package was built from: `run_dir` (absolute), else `run` (its name)
    among the competition's runs where `compete run` keeps them; None when unknown."""
    from common import tracking

    if manifest.get("run_dir"):
        return Path(manifest["run_dir"])
    if manifest.get("run"):
        candidate = Path(tracking.ROOT) / competition.name / str(manifest["run"])
        return candidate.resolve() if candidate.is_dir() else None
    return None


def check_metadata(package: Package) -> tuple[dict, dict | None]:
    """What Kaggle would score only to fail, refused before any upload: internet on, the
    competition's files or the package's dataset not attached. (The client's own checks
    run when it reads the folders.)"""
    from common.runtimes.notebook import read_json   # the rerun's reader of the same files

    kernel = read_json(package.kernel_metadata)
    dataset = read_json(package.dataset_metadata) if package.dataset is not None else None
    where = package.kernel_metadata
    if kernel.get("enable_internet") is not False:
        raise io.InputError(f"{where}: enable_internet is {json.dumps(kernel.get('enable_internet', 'absent'))} (the "
                            f"client turns internet on unless it is false); Kaggle scores no notebook with internet "
                            f"on: set it to false")
    if package.slug not in (kernel.get("competition_sources") or []):
        raise io.InputError(f"{where}: competition_sources does not hold {package.slug!r}; the notebook would not see "
                            f"the competition's files")
    if dataset is not None and dataset.get("id") not in (kernel.get("dataset_sources") or []):
        raise io.InputError(f"{where}: dataset_sources does not hold the package's dataset {dataset.get('id')!r} "
                            f"({package.dataset_metadata}); the notebook would not see the model files")
    for path, metadata in ((where, kernel), (package.dataset_metadata, dataset)):
        if metadata is not None and (not isinstance(metadata.get("id"), str) or metadata["id"].count("/") != 1):
            raise io.InputError(f"{path}: id {metadata.get('id')!r} is not OWNER/SLUG")
    return kernel, dataset


class _Checked(Exception):
    """Raised where the client would open its connection: its checks are all behind it."""


class _NoConnection:
    def __enter__(self):
        raise _Checked

    def __exit__(self, *exc):
        return False


def client_checks(api, package: Package, dataset_exists: bool, quiet: bool) -> None:
    """The client's own checks of the folders, with no request: `kernels_push` and
    `dataset_create_new` / `dataset_create_version` check their metadata file and then
    open their connection (kaggle_api_extended.py, kaggle 2.2.5), which here stops them.
    So a folder the client refuses costs no upload, and a dry run proves them."""
    calls = [(package.kernel_metadata, lambda: api.kernels_push(str(package.kernel)))]
    if package.dataset is not None:
        folder = str(package.dataset)
        calls.append((package.dataset_metadata,
                      (lambda: api.dataset_create_version(folder, "", quiet=True, dir_mode="zip")) if dataset_exists
                      else (lambda: api.dataset_create_new(folder, quiet=True, dir_mode="zip"))))
    connect = api.build_kaggle_client
    api.build_kaggle_client = _NoConnection
    try:
        for metadata, call in calls:
            try:
                with web.client_output(quiet):
                    call()
            except _Checked:
                continue
            except (ValueError, KeyError, TypeError) as error:
                raise io.InputError(f"{metadata}: the kaggle client refuses it: {' '.join(str(error).split())}") from None
            raise PlatformError(f"{metadata}: the kaggle client went past its checks without connecting (a client "
                                f"other than 2.2.5?); nothing uploaded")
    finally:
        api.build_kaggle_client = connect


def fill_owner(package: Package, kernel: dict, dataset: dict | None, user: str, creds, write: bool) -> list[str]:
    """Put `user` where the metadata names the placeholder owner (the kernel's and the
    dataset's id, the kernel's sources of the package's own dataset); refuse an id that
    names another account, which Kaggle would refuse after the uploads. Returns what
    changed, as "file (keys)"; writes the files only with `write`."""
    changed = []
    for path, metadata, keys in ((package.kernel_metadata, kernel, ("id", "dataset_sources", "kernel_sources")),
                                 (package.dataset_metadata, dataset, ("id",))):
        if metadata is None:
            continue
        filled = []
        for key in keys:
            value = metadata.get(key)
            if value is None:
                continue
            refs = value if isinstance(value, list) else [value]
            new = []
            for ref in refs:
                owner, _, rest = str(ref).partition("/")
                if owner == PLACEHOLDER:
                    ref = f"{user}/{rest}"
                    filled.append(key)
                elif key == "id" and owner.lower() != user.lower():
                    raise AccessError(f"{path}: id {ref} is {owner}'s, but the credentials from {creds.source} are "
                                      f"{user}'s; change the id's owner to {user} (or {PLACEHOLDER}), or sign in as {owner}")
                new.append(ref)
            metadata[key] = new if isinstance(value, list) else new[0]
        if filled:
            changed.append(f"{path.relative_to(package.root)} ({', '.join(dict.fromkeys(filled))})")
            if write:
                io.write_text(path, json.dumps(metadata, indent=2) + "\n")
    return changed


class _Steps:
    """Each step's line: shown as it happens through `progress`, else kept for the receipt."""

    def __init__(self, progress: Callable[[str], None] | None):
        self.progress, self.lines = progress, []

    def say(self, line: str) -> None:
        log.info(line)
        if self.progress is not None:
            self.progress(line)
        else:
            self.lines.append(line)


# ---------------------------------------------------------------- failures

def _explain(error: BaseException, what: str, creds) -> PlatformError:
    """One line for a failed request about a dataset or a kernel (kaggle._explain speaks of
    competitions)."""
    status = web.status_of(error)
    if status == 401:
        return kaggle._explain(error, "", creds)
    known = web.explain_transport(error, "Kaggle", kaggle.HOST)
    if known is not None:
        return type(known)(f"{what}: {known}")
    if status is not None:
        return PlatformError(f"{what}: Kaggle answered HTTP {status} ({kaggle._server_message(error)})")
    return PlatformError(f"{what}: {type(error).__name__}: {error}")


def _rpc(error: BaseException) -> str | None:
    """The RPC whose request failed (the last part of its URL), or None when unknown."""
    url = kaggle._url(error)
    return url.rstrip("/").rsplit("/", 1)[-1] if kaggle._is_rpc(error) else None


def _upload_failed(error: BaseException) -> bool:
    # _upload_file's own error when a file never reached storage (kaggle_api_extended.py):
    # raised before the creating request, so nothing exists yet.
    return isinstance(error, ValueError) and str(error).startswith("Upload unsuccessful")


def _changed_nothing(error: BaseException) -> bool:
    """Whether a failed creating step surely created nothing, so trying it again is safe."""
    if _upload_failed(error) or web.never_sent(error) or web.status_of(error) == 429:
        return True
    rpc = _rpc(error)
    return rpc is not None and rpc not in CREATING and web.is_transient(error)


def _refused(error: BaseException) -> bool:
    status = web.status_of(error)
    return status is not None and 400 <= status < 500 and status != 429


def _create(call: Callable[[], Any], *, what: str, find: Callable[[], Any], where: str, metadata: Path | None,
            creds, quiet: bool, explain: Callable[[BaseException], PlatformError] | None = None) -> tuple[Any, Any]:
    """`call()`, a client call ending in the request that creates something, sent once:
    tried again only after failures that surely changed nothing. After an ambiguous
    failure `find()` (looked at a few times) says what Kaggle now shows: (None, found)
    then; otherwise the call's answer comes back as (answer, None). `explain` words a
    failure (default: as a dataset's or a kernel's)."""
    def attempt():
        with web.client_output(quiet):
            return call()

    try:
        return web.retry(attempt, what=what, retry_if=_changed_nothing, delays=web.RETRY_DELAYS[:CREATE_ATTEMPTS - 1],
                         say=lambda error, delay: log.warning("%s failed (%s); nothing was created, trying again in %.1f s",
                                                              what, web.summary(error), delay)), None
    except Exception as error:
        if _upload_failed(error):
            raise PlatformError(f"{what}: {error} (the file did not reach Kaggle's storage, {CREATE_ATTEMPTS} tries); "
                                f"nothing was created; try again later") from None
        if isinstance(error, ValueError) and not isinstance(error, OSError):  # requests' errors are OSErrors
            # The client's own checks of the metadata (kaggle_api_extended.py: kernels_push,
            # dataset_create_new, dataset_create_version), made before any request.
            raise io.InputError(f"{metadata or what}: the kaggle client refuses it: {' '.join(str(error).split())}") from None
        explained = explain(error) if explain is not None else _explain(error, what, creds)
        if _refused(error) or _changed_nothing(error):
            raise explained from None
        found = web.look_again(find)
        if found is None:
            raise UncertainSubmission(f"{what}: the request ended in an error ({explained}) and Kaggle does not show it "
                                      f"done yet; check {where} before running this again (not sent again, to avoid "
                                      f"doing it twice)") from None
        return None, found


def _once_only(api) -> None:
    """Turn off the client's retry of the dataset-creating requests: it sends them again
    after a dropped connection, which may follow a request Kaggle applied
    (KaggleApi.with_retry retries any ConnectionError; dataset_create_new and
    dataset_create_version wrap create_dataset / create_dataset_version in it)."""
    retrying = api.with_retry

    def with_retry(func, *args, **kwargs):
        if getattr(func, "__name__", "") in ("create_dataset", "create_dataset_version", "create_dataset_version_by_id"):
            return func
        return retrying(func, *args, **kwargs)
    api.with_retry = with_retry


# ---------------------------------------------------------------- reads

def _read(call: Callable[[], Any], what: str, creds):
    return web.retry(call, what=what, explain=lambda error: _explain(error, what, creds))


def who(api, creds) -> str:
    """The user name of the credentials. A legacy key names it; an OAuth sign-in learnt it;
    a token is asked about, as the client asks when it signs in with one
    (kaggle_api_extended.py, KaggleApi._introspect_token: IntrospectToken)."""
    user = creds.username or api.get_config_value(api.CONFIG_NAME_USER)
    if not user:
        from kagglesdk.security.types.oauth_service import IntrospectTokenRequest
        request = IntrospectTokenRequest()
        request.token = creds.token

        def ask():
            with api.build_kaggle_client() as client:
                return client.security.oauth_client.introspect_token(request)
        answer = _read(ask, "asking Kaggle whose the token is", creds)
        if not answer.active or not answer.username:
            raise CredentialsError(f"Kaggle does not recognise the token from {creds.source} (expired or revoked?); "
                                   f"create a new one at {kaggle.WEB}/settings")
        user = answer.username
    # The client's dataset checks compare ids with it (dataset_create_new, dataset_create_version).
    api.config_values[api.CONFIG_NAME_USER] = user
    return user


def dataset_state(api, ref: str, creds) -> tuple[str, int | None] | None:
    """(status, current version number) of dataset `ref`, or None when Kaggle has none."""
    def ask():
        try:
            with web.client_output(quiet=True):
                payload = json.loads(api.dataset_status(ref, format="json(status,current_version_number)"))
        except Exception as error:
            if web.status_of(error) == 404:
                return None
            raise
        return str(payload.get("status", "")).lower(), payload.get("current_version_number")
    return _read(ask, f"looking up dataset {ref}", creds)


def kernel_version(api, ref: str, creds) -> int | None:
    """The current version number of kernel `ref` (this account's), or None when it has none."""
    slug = ref.split("/", 1)[1]

    def ask():
        with web.client_output(quiet=True):
            return api.kernels_list(mine=True, search=slug, page_size=100) or []
    for row in _read(ask, f"looking up kernel {ref}", creds):
        if row is not None and str(row.ref).lower().strip("/").endswith(ref.lower()):
            return row.current_version_number or 0
    return None


def log_lines(text: str) -> list[str]:
    """A kernel log's lines. Kaggle keeps the log as a JSON list of {stream_name, time,
    data} entries (kaggle_api_extended.py, _iter_blob_lines); other text is taken as is."""
    try:
        events = json.loads(text)
    except ValueError:
        events = None
    if isinstance(events, list):
        text = "".join(str(event.get("data", "")) for event in events if isinstance(event, dict))
    return [line.rstrip() for line in str(text).splitlines() if line.strip()]


# ---------------------------------------------------------------- the steps

def submit(competition, root: Path, data_dir: Path, message: str, dry_run: bool = False, quiet: bool = False,
           profile: str | None = None, progress: Callable[[str], None] | None = None) -> Receipt:
    """Prove the package in the rerun emulation, then upload, run and submit it (with
    `dry_run`, stop after the emulation and the account's checks)."""
    steps = _Steps(progress)
    package = read_package(root, competition)
    kernel_metadata, dataset_metadata = check_metadata(package)
    slug = package.slug

    result = emulate(package, competition, data_dir, profile)
    steps.say(f"rerun emulation: passed on {result.profile} in {result.seconds:.0f} s, {package.output} valid against "
              f"{data_dir} (log: {result.log})")

    creds = kaggle.credentials()
    api = kaggle._api(creds)
    _once_only(api)
    user = who(api, creds)
    with web.client_output(quiet):
        limits = kaggle._read(lambda: api.competition_get_submission_limits(slug), "submission limits", slug, creds)
    kaggle._check_limits(limits, slug)
    left = f"{limits.num_allowed_now} submission(s) left today" if limits is not None else "allowance unknown"
    steps.say(f"signed in as {user} (credentials from {creds.source}); {slug}: {left}")

    filled = fill_owner(package, kernel_metadata, dataset_metadata, user, creds, write=not dry_run)
    if filled:
        steps.say(f"{'would fill' if dry_run else 'filled'} in {PLACEHOLDER} with {user} in {' and '.join(filled)}")
    kernel_ref = kernel_metadata["id"]
    dataset_ref = dataset_metadata["id"] if dataset_metadata is not None else None
    before = dataset_state(api, dataset_ref, creds) if dataset_ref else None
    client_checks(api, package, before is not None, quiet)
    checked = [path.relative_to(package.root).as_posix() for path in (package.kernel_metadata, package.dataset_metadata)
               if path is not None]
    steps.say(f"the kaggle client's own checks accept {' and '.join(checked)}")
    if dry_run:
        dataset = ("" if dataset_ref is None else f"{'version' if before else 'create'} dataset {dataset_ref}"
                   + (f" (now at version {before[1]})" if before else "") + ", ")
        steps.say(f"dry run: would {dataset}push kernel {kernel_ref}, follow its run and submit its {package.output} "
                  f"to {slug}; nothing uploaded")
        return Receipt("kaggle", False, steps.lines, run_dir=package.run_dir)

    if dataset_ref is not None:
        upload_dataset(api, package, dataset_ref, before, message, creds, quiet, steps)
    version = push_kernel(api, package, kernel_ref, creds, quiet, steps)
    follow_run(api, package, kernel_ref, version, creds, steps)
    output = fetch_output(api, package, competition, kernel_ref, version, data_dir, creds, steps)
    reference = submit_version(api, competition, package, kernel_ref, version, output, message, creds, quiet, steps)
    steps.say(f"see `compete submissions {competition.name}` for its score")
    return Receipt("kaggle", True, steps.lines, str(reference), run_dir=package.run_dir)


def emulate(package: Package, competition, data_dir: Path, profile: str | None):
    """The rerun emulation, on the profile given, else the package's."""
    from common.runtimes import runner

    isolated, why = runner.sandbox_available()
    if not isolated:
        raise PlatformError(f"{package.root}: cannot run the rerun emulation here ({why}); nothing uploaded: submit "
                            f"from a machine where `compete runtime test` runs")
    result = runner.run_test(package.root, competition, data_dir, profile=profile or package.profile)
    if not result.ok:
        failure = f"{result.failure}: " if result.failure else ""
        raise RuntimeTestFailed(f"{package.root}: not uploaded, the rerun emulation ({result.profile}) on {data_dir} "
                                f"failed: {failure}{result.reason} (log: {result.log})")
    return result


def upload_dataset(api, package: Package, ref: str, before, message: str, creds, quiet: bool, steps: _Steps) -> int:
    """Create the dataset, or version it when it exists (`before`: its state then); wait
    until Kaggle has the new version ready. Returns that version's number."""
    folder = str(package.dataset)
    files = sorted(f"{path.name}.zip ({path.name}/ zipped)" if path.is_dir() else path.name
                   for path in package.dataset.iterdir() if path.name != DATASET_METADATA)
    if before is None:
        what, expected = f"creating dataset {ref}", 1
        answer, found = _create(lambda: api.dataset_create_new(folder, public=False, quiet=quiet, dir_mode="zip"),
                                what=what, find=lambda: dataset_state(api, ref, creds), metadata=package.dataset_metadata,
                                where=f"{kaggle.WEB}/datasets/{ref}", creds=creds, quiet=quiet)
    else:
        what, expected = f"versioning dataset {ref}", (before[1] or 0) + 1

        def newer():
            state = dataset_state(api, ref, creds)
            return state if state is not None and (state[1] or 0) >= expected else None
        answer, found = _create(lambda: api.dataset_create_version(folder, message, quiet=quiet, dir_mode="zip"),
                                what=what, find=newer, metadata=package.dataset_metadata,
                                where=f"{kaggle.WEB}/datasets/{ref} (its versions)", creds=creds, quiet=quiet)
    if answer is not None and (answer.error or (answer.status or "ok").lower() not in ("ok", "")):
        raise PlatformError(f"{what}: Kaggle refused it: {answer.error or answer.status}")
    verb = "created" if before is None else f"version {expected} created"
    steps.say(f"dataset {ref}: {verb} with {', '.join(files)}" if found is None else
              f"dataset {ref}: {verb} (Kaggle answered with an error, but now shows it); not sent again")
    version = wait_ready(api, ref, expected, creds)
    steps.say(f"dataset {ref}: version {version} ready")
    return version


def wait_ready(api, ref: str, expected: int, creds) -> int:
    """Look at the dataset until version `expected` (or later) is ready."""
    def look() -> int:
        state = dataset_state(api, ref, creds)
        if state is None:
            raise web.NotYet("not listed yet")
        status, version = state
        if status == "failed":
            raise PlatformError(f"dataset {ref}: Kaggle failed to process version {version}; see "
                                f"{kaggle.WEB}/datasets/{ref}; the kernel was not pushed")
        if status != "ready" or (version or 0) < expected:
            raise web.NotYet(f"version {version} {status}")
        return version
    try:
        return web.retry(look, what=f"waiting for dataset {ref}", retry_if=lambda error: isinstance(error, web.NotYet),
                         delays=READY_DELAYS, say=lambda error, delay: log.info(
                             "dataset %s: %s; looking again in %.0f s", ref, error, delay))
    except web.NotYet as still:
        raise PlatformError(f"dataset {ref}: still {still} after {sum(READY_DELAYS) / 60:.0f} min; the kernel was not "
                            f"pushed (it would mount an older version); see {kaggle.WEB}/datasets/{ref}") from None


def push_kernel(api, package: Package, ref: str, creds, quiet: bool, steps: _Steps) -> int:
    """Push the kernel folder (Kaggle saves a new version and starts its run); its number."""
    before = kernel_version(api, ref, creds)

    def newer():
        current = kernel_version(api, ref, creds)
        return current if current is not None and (before is None or current > before) else None
    answer, found = _create(lambda: api.kernels_push(str(package.kernel)), what=f"pushing kernel {ref}", find=newer,
                            metadata=package.kernel_metadata, where=f"{kaggle.WEB}/code/{ref} (its versions)",
                            creds=creds, quiet=quiet)
    if found is not None:
        steps.say(f"kernel {ref}: version {found} pushed (Kaggle answered with an error, but now shows it); "
                  f"not pushed again")
        return found
    if answer.error:
        raise PlatformError(f"pushing kernel {ref}: Kaggle refused it: {answer.error}")
    version = answer.version_number or newer()
    if not version:
        raise UncertainSubmission(f"pushing kernel {ref}: Kaggle accepted it but names no version and lists none newer; "
                                  f"check {kaggle.WEB}/code/{ref} before running this again")
    unattached = [str(source) for name in ("invalid_dataset_sources", "invalid_competition_sources",
                                           "invalid_kernel_sources", "invalid_model_sources")
                  for source in (getattr(answer, name, None) or [])]
    if unattached:
        raise PlatformError(f"kernel {ref} version {version}: pushed, but Kaggle did not attach {', '.join(unattached)} "
                            f"(not found, or not this account's to use); nothing submitted")
    steps.say(f"kernel {ref}: version {version} pushed, its run started ({answer.url or f'{kaggle.WEB}/code/{ref}'})")
    return version


def follow_run(api, package: Package, ref: str, version: int, creds, steps: _Steps) -> None:
    """Look at the version's run until it ends, saying each new state; a failure ends
    with the last lines of its log."""
    target = f"{ref}/{version}"
    deadline = time.monotonic() + RUN_WAIT_SECONDS
    delay, said = RUN_FIRST_POLL, None

    def look():
        try:
            return api.kernels_status(target)
        except Exception as error:
            if web.status_of(error) == 404:   # a version just pushed may take a moment to be listed
                return None
            raise

    while True:
        answer = _read(look, f"kernel {ref} version {version} status", creds)
        state = "not listed yet" if answer is None else getattr(answer.status, "name", str(answer.status)).lower()
        if state != said:
            steps.say(f"kernel {ref} version {version}: {state}")
            said = state
        if state == "complete":
            return
        if state in ("error", "cancel_requested", "cancel_acknowledged"):
            why = f" ({answer.failure_message})" if answer.failure_message else ""
            tail = run_log(api, target, creds)
            for line in tail:
                steps.say(f"  log: {line}")
            last = tail[-1] if tail else "(the log is empty)"
            raise KernelFailed(f"kernel {ref} version {version} ended in {state} on Kaggle{why}; nothing submitted; the "
                               f"log ends: {last}")
        if time.monotonic() + delay > deadline:
            waited = f"{RUN_WAIT_SECONDS / 3600:.0f} h" if RUN_WAIT_SECONDS >= 3600 else f"{RUN_WAIT_SECONDS:.1f} s"
            raise PlatformError(f"kernel {ref} version {version} is still {state} after {waited}; "
                                f"nothing submitted; once it completes: kaggle competitions submit {package.slug} "
                                f"-f {package.output} -k {ref} -v {version} -m MESSAGE")
        time.sleep(delay)
        delay = min(delay * 2, RUN_POLL)


def run_log(api, target: str, creds) -> list[str]:
    """The last LOG_LINES lines of a version's log (`kernels logs`)."""
    try:
        with web.client_output(quiet=True):
            text = _read(lambda: api.kernels_logs(target), f"reading the log of {target}", creds)
    except PlatformError as error:
        return [f"(its log could not be read: {error})"]
    return log_lines(text)[-LOG_LINES:]


def fetch_output(api, package: Package, competition, ref: str, version: int, data_dir: Path, creds,
                 steps: _Steps) -> Path:
    """The version's output file (`kernels output`, that file alone), kept beside the
    package in <package>.kaggle/v<version>/ and validated against the sample in `data_dir`."""
    from common.submission import InvalidSubmission

    keep = package.root.resolve().parent / f"{package.root.name}.kaggle" / f"v{version}"
    shutil.rmtree(keep, ignore_errors=True)
    keep.mkdir(parents=True)
    target = f"{ref}/{version}"
    with web.client_output(quiet=True):
        _read(lambda: api.kernels_output(target, str(keep), file_pattern=f"^{re.escape(package.output)}$", force=True,
                                         quiet=True), f"fetching the output of {target}", creds)
    output = keep / package.output
    if not output.is_file():
        raise KernelFailed(f"kernel {ref} version {version} completed but wrote no {package.output} (Kaggle would "
                           f"report Submission CSV Not Found); nothing submitted")
    if output.suffix.lower() == ".csv":
        problems = competition.validate_file(output, data_dir)
        if problems:
            raise InvalidSubmission(output, problems, context=f"not submitted: kernel {ref} version {version} wrote it "
                                                              f"on Kaggle, against the sample in {data_dir}")
    steps.say(f"kernel {ref} version {version}: wrote {package.output}, valid (kept as {output})")
    return output


def submit_version(api, competition, package: Package, ref: str, version: int, output: Path, message: str, creds,
                   quiet: bool, steps: _Steps) -> str:
    """`competitions submit SLUG -f OUTPUT -k REF -v VERSION -m MESSAGE`, once."""
    slug = package.slug
    started = datetime.now(timezone.utc)

    def listed():
        return find_submission(kaggle.submissions(competition, api=api, creds=creds), None, message, started, "ref", "description")
    what = f"submitting kernel {ref} version {version} to {slug}"
    answer, found = _create(lambda: api.competition_submit_code(package.output, message, slug, kernel=ref,
                                                                kernel_version=version, quiet=quiet),
                            what=what, find=listed, metadata=None, where=f"`compete submissions {competition.name}`",
                            creds=creds, quiet=quiet, explain=lambda error: kaggle._explain(error, slug, creds))
    if found is not None:
        steps.say(f"submitted kernel {ref} version {version} ({package.output}) to {slug} (Kaggle answered with an "
                  f"error, but its submission list shows it, ref {found}); not sent again")
        return str(found)
    reference = answer.ref or web.look_again(listed)
    if not reference:
        raise UncertainSubmission(f"{what}: Kaggle answered {answer.message!r} but lists no such submission; check "
                                  f"`compete submissions {competition.name}` before submitting again")
    steps.say(f"submitted kernel {ref} version {version} ({package.output}) to {slug}: "
              f"{answer.message or 'accepted'} (ref {reference})")
    return str(reference)
