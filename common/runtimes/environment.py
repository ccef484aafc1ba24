"""Check a bundle against a runtime profile before running it: what fails on the
platform for want of a Python feature, a package or an operator set is named here,
one line each, instead of an hour into a submission.

- every .py file parses under the profile's Python (`ast.parse(feature_version=...)`),
  and asks for no `__future__` feature newer than it; the file and line are named;
- every import is the standard library of that Python, a module of the bundle, or a
  distribution of the profile's environment (the import-name -> distribution table
  below: PIL is pillow, cv2 opencv, sklearn scikit-learn, ...); imports inside a
  `try` that catches ImportError are optional and not required;
- version floors the bundle declares (bundle.json `requirements`, requirements.txt)
  hold for the profile's versions;
- every .onnx model's opset and IR version are ones the profile's onnxruntime reads.
"""
from __future__ import annotations

import __future__
import ast
import json
import sys
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import InvalidVersion, Version

from common.runtimes import Profile, normalize

# Import name -> the distributions (pip and conda spellings) that provide it, where
# they differ; any other import is looked up under its own name.
PROVIDERS = {
    "PIL": ("pillow",), "cv2": ("opencv", "py-opencv", "opencv-python", "opencv-python-headless"),
    "sklearn": ("scikit-learn",), "skimage": ("scikit-image",), "yaml": ("pyyaml",),
    "torch": ("pytorch", "torch"), "tensorflow": ("tensorflow", "tensorflow-base", "tensorflow-gpu"),
    "onnxruntime": ("onnxruntime", "onnxruntime-gpu"), "xgboost": ("xgboost", "py-xgboost"),
    "dotenv": ("python-dotenv",), "bs4": ("beautifulsoup4",), "dateutil": ("python-dateutil",),
    "google": ("protobuf", "google-pasta", "google-auth", "google-api-core", "googleapis-common-protos"),
    "pywt": ("pywavelets",), "jwt": ("pyjwt",), "OpenSSL": ("pyopenssl",), "msgpack": ("msgpack-python", "msgpack"),
    "faiss": ("faiss", "faiss-cpu", "faiss-gpu"), "pynvml": ("nvidia-ml-py", "nvidia-ml-py3"), "attr": ("attrs",),
    "markdown_it": ("markdown-it-py",), "socks": ("pysocks",), "brotli": ("brotli-python", "brotli"),
    "blis": ("cython-blis", "blis"), "flatbuffers": ("python-flatbuffers", "flatbuffers"),
    "xxhash": ("python-xxhash", "xxhash"), "tzdata": ("python-tzdata", "tzdata"), "ray": ("ray-core", "ray"),
    "pkg_resources": ("setuptools",), "keras_applications": ("keras-applications",),
    "keras_preprocessing": ("keras-preprocessing",), "serial": ("pyserial",), "Crypto": ("pycryptodome",),
    "grpc": ("grpcio",),
}

# Distribution spellings that name the same package in pip and conda.
ALIASES = {"torch": "pytorch", "opencv-python": "opencv", "opencv-python-headless": "opencv",
           "tensorflow-gpu": "tensorflow", "onnxruntime-gpu": "onnxruntime", "msgpack": "msgpack-python",
           "xgboost": "py-xgboost"}

# Standard-library modules newer than some profile's Python (the docs' "Added in"), and
# ones this Python no longer has but an older profile's still does ("Removed in").
STDLIB_ADDED = {"dataclasses": (3, 7), "contextvars": (3, 7), "importlib.resources": (3, 7),
                "importlib.metadata": (3, 8), "zoneinfo": (3, 9), "graphlib": (3, 9), "tomllib": (3, 11)}
STDLIB_REMOVED = {"macpath": (3, 8), "dummy_threading": (3, 9), "_dummy_thread": (3, 9), "formatter": (3, 10),
                  "parser": (3, 10), "symbol": (3, 10), "binhex": (3, 11), "asynchat": (3, 12), "asyncore": (3, 12),
                  "distutils": (3, 12), "imp": (3, 12), "smtpd": (3, 12)}

# onnxruntime release -> (highest ONNX opset, highest IR version) it implements, from
# microsoft/onnxruntime docs/Versioning.md ("Version matrix").
ONNXRUNTIME_SUPPORT = {(0, 4): (10, 5), (0, 5): (10, 5), (1, 0): (11, 6), (1, 1): (11, 6), (1, 2): (11, 6),
                       (1, 3): (12, 7), (1, 4): (12, 7), (1, 5): (12, 7), (1, 6): (13, 7), (1, 7): (13, 7),
                       (1, 8): (14, 7)}


def check(code_dir: Path, profile: Profile) -> list[str]:
    """Problems of the unpacked bundle in `code_dir` on `profile`, one line each."""
    code_dir = Path(code_dir)
    files = sorted(path for path in code_dir.rglob("*.py") if path.is_file())
    local = {path.relative_to(code_dir).parts[0].removesuffix(".py") for path in files}
    problems = []
    for path in files:
        problems += check_source(path, path.relative_to(code_dir).as_posix(), profile, local)
    problems += check_requirements(code_dir, profile)
    for model in sorted(code_dir.rglob("*.onnx")):
        problems += check_onnx(model, model.relative_to(code_dir).as_posix(), profile)
    return problems


def check_source(path: Path, name: str, profile: Profile, local: set[str]) -> list[str]:
    version = min(profile.python_version, sys.version_info[:2])
    source = path.read_bytes()
    try:
        tree = ast.parse(source, name, feature_version=version)
    except SyntaxError as error:
        return [f"{name}:{error.lineno}: not valid Python {profile.python} ({error.msg}); the {profile.name} runtime "
                f"could not even start it"]
    except ValueError as error:  # e.g. a NUL byte
        return [f"{name}: cannot be parsed ({error})"]
    problems = []
    for node, module, optional in _imports(tree):
        top = module.split(".")[0]
        if node.module_level_future:
            feature = getattr(__future__, module, None)
            if feature is None or feature.optional[:2] > profile.python_version:
                problems.append(f"{name}:{node.lineno}: `from __future__ import {module}` needs a newer Python than "
                                f"the {profile.name} runtime's {profile.python}")
            continue
        if optional or top in local:
            continue
        if _stdlib(module, profile):
            continue
        candidates = PROVIDERS.get(top, (top, top.replace("_", "-")))
        if not any(profile.version_of(candidate)[0] for candidate in candidates):
            problems.append(f"{name}:{node.lineno}: imports {top}, which the {profile.name} runtime does not have "
                            f"(it is neither Python {profile.python}'s standard library nor a package of its environment)")
    return problems


class _Import:
    def __init__(self, lineno: int, module_level_future: bool = False):
        self.lineno, self.module_level_future = lineno, module_level_future


def _imports(tree: ast.AST):
    """(where, module name, optional) for every absolute import in `tree`."""
    optional_lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(_catches_import_error(handler) for handler in node.handlers):
            for inner in node.body:
                optional_lines.update(child.lineno for child in ast.walk(inner) if hasattr(child, "lineno"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield _Import(node.lineno), alias.name, node.lineno in optional_lines
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            if node.module == "__future__":
                for alias in node.names:
                    yield _Import(node.lineno, module_level_future=True), alias.name, False
            else:
                yield _Import(node.lineno), node.module, node.lineno in optional_lines


def _catches_import_error(handler: ast.ExceptHandler) -> bool:
    names = []
    for node in ([handler.type] if handler.type is not None else []):
        names += [element for element in (node.elts if isinstance(node, ast.Tuple) else [node])]
    caught = {getattr(name, "id", getattr(name, "attr", "")) for name in names}
    return handler.type is None or bool(caught & {"ImportError", "ModuleNotFoundError", "Exception", "BaseException"})


def _stdlib(module: str, profile: Profile) -> bool:
    """Whether `module` is in the standard library of the profile's Python (a backport
    the environment installs, like dataclasses on 3.6, counts as its package)."""
    top = module.split(".")[0]
    if top in STDLIB_REMOVED and profile.python_version < STDLIB_REMOVED[top]:
        return True
    if top not in sys.stdlib_module_names:
        return False
    for name, added in STDLIB_ADDED.items():
        if (module == name or module.startswith(name + ".")) and added > profile.python_version:
            return profile.version_of(name)[0]
    return True


def declared_requirements(code_dir: Path) -> list[tuple[str, str]]:
    """(where, requirement) pairs a bundle declares: bundle.json's `requirements` and
    requirements.txt at its root."""
    found = []
    manifest = code_dir / "bundle.json"
    if manifest.is_file():
        try:
            for line in json.loads(manifest.read_text()).get("requirements", []):
                found.append(("bundle.json", line))
        except (ValueError, AttributeError):
            pass
    requirements = code_dir / "requirements.txt"
    if requirements.is_file():
        for number, line in enumerate(requirements.read_text(errors="replace").splitlines(), 1):
            line = line.split("#")[0].strip()
            if line and not line.startswith("-"):
                found.append((f"requirements.txt:{number}", line))
    return found


def check_requirements(code_dir: Path, profile: Profile) -> list[str]:
    problems = []
    for where, line in declared_requirements(code_dir):
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            problems.append(f"{where}: {line!r} is not a requirement")
            continue
        name = normalize(requirement.name)
        present, version = False, None
        for candidate in (name, ALIASES.get(name, name)):
            present, version = profile.version_of(candidate)
            if present:
                break
        if not present:
            problems.append(f"{where}: requires {requirement}, which the {profile.name} runtime does not have")
        elif version is not None and requirement.specifier:
            try:
                satisfied = Version(version) in requirement.specifier
            except InvalidVersion:
                satisfied = True
            if not satisfied:
                problems.append(f"{where}: requires {requirement}; the {profile.name} runtime has {requirement.name} {version}")
    return problems


def check_onnx(path: Path, name: str, profile: Profile) -> list[str]:
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as error:  # onnx raises DecodeError and others for a damaged file
        return [f"{name}: not a readable ONNX model ({' '.join(str(error).split())[:200]})"]
    present, version = profile.version_of("onnxruntime")
    if not present:
        return [f"{name}: an ONNX model, but the {profile.name} runtime has no onnxruntime"]
    try:
        release = Version(version).release[:2] if version else None
    except InvalidVersion:
        release = None
    if release not in ONNXRUNTIME_SUPPORT:
        return []  # newer than the table: every opset up to its release is implemented
    highest_opset, highest_ir = ONNXRUNTIME_SUPPORT[release]
    opset = max((entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx")), default=0)
    problems = []
    if opset > highest_opset:
        problems.append(f"{name}: ONNX opset {opset}; the {profile.name} runtime's onnxruntime {version} reads "
                        f"opsets up to {highest_opset} (export with opset_version={highest_opset})")
    if model.ir_version > highest_ir:
        problems.append(f"{name}: ONNX IR version {model.ir_version}; onnxruntime {version} reads up to {highest_ir}")
    return problems


def highest_onnx(profile: Profile) -> tuple[int, int]:
    """(opset, IR version) to export at for the profile's onnxruntime."""
    present, version = profile.version_of("onnxruntime")
    if not present:
        raise ValueError(f"the {profile.name} runtime has no onnxruntime")
    try:
        release = Version(version).release[:2] if version else None
    except InvalidVersion:
        release = None
    return ONNXRUNTIME_SUPPORT.get(release, max(ONNXRUNTIME_SUPPORT.values()))
