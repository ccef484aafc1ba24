"""DrivenData "SNOMED CT Entity Linking" (2024): a current runtime with the
/code_execution layout, a conda lock file and smoke tests.

Read from drivendataorg/snomed-ct-entity-linking-runtime:
- runtime/entrypoint.sh: `cd /code_execution`; refuses a zip without main.py;
  `unzip ./submission/submission.zip -d ./`; `python main.py` (a smoke test prints to
  the log; a full run's output goes to /code_execution/submission/private_log.txt, since
  the test run may not log); main.py must leave `submission.csv` in its own folder, copied
  to ./submission/submission.csv; the log is tee'd to /code_execution/submission/log.txt.
- Makefile `test-submission`: `docker run --network none`, data bound read-only at
  /code_execution/data, ./submission bound at /code_execution/submission, GPU when
  nvidia-smi exists (`--gpus all`), else the CPU image; `pack-submission` zips
  submission_src; `smoke-test-data` (scripts/smoke_test_data.py) cuts the data to a few ids.
- runtime/conda-lock-cpu.yml at commit 3a6c8a2a44afecc5edcb5bef52ef449b84a5d544: the
  resolved environment; its Python distributions are below (native libraries left out).
The repository states no time limit.
"""
from common.runtimes import Profile

LOCKED = {
    "absl-py": "2.1.0", "accelerate": "0.25.0", "aiofiles": "23.2.1", "aiohttp": "3.8.5", "aiohttp-cors": "0.7.0",
    "aiosignal": "1.3.1", "anyio": "4.2.0", "astunparse": "1.6.3", "async-timeout": "4.0.3", "attrs": "23.2.0",
    "blessed": "1.19.1", "blinker": "1.7.0", "brotli-python": "1.0.9", "cached-property": "1.5.2",
    "cachetools": "5.3.2", "catalogue": "2.0.10", "certifi": "2023.11.17", "cffi": "1.16.0",
    "charset-normalizer": "3.3.2", "click": "8.1.7", "cloudpathlib": "0.16.0", "colorama": "0.4.6",
    "colorful": "0.5.4", "confection": "0.1.4", "cryptography": "42.0.2", "cymem": "2.0.8",
    "cython-blis": "0.7.10", "dataclasses": "0.8", "dataclasses-json": "0.6.3", "datasets": "2.16.1",
    "dill": "0.3.7", "diskcache": "5.6.3", "distlib": "0.3.8", "einops": "0.7.0", "exceptiongroup": "1.2.0",
    "faiss": "1.7.4", "faiss-cpu": "1.7.4", "filelock": "3.13.1", "fsspec": "2023.10.0", "gast": "0.5.4",
    "gensim": "4.3.2", "gmpy2": "2.1.2", "google-api-core": "2.16.1", "google-auth": "2.27.0",
    "google-auth-oauthlib": "1.0.0", "google-pasta": "0.2.0", "googleapis-common-protos": "1.62.0",
    "gpustat": "1.1.1", "greenlet": "3.0.3", "grpcio": "1.54.3", "h5py": "3.10.0", "huggingface-hub": "0.20.2",
    "idna": "3.6", "importlib-metadata": "7.0.1", "importlib-resources": "6.1.1", "iniconfig": "2.0.0",
    "jinja2": "3.1.3", "joblib": "1.3.2", "jsonpatch": "1.33", "jsonpickle": "3.0.2", "jsonpointer": "2.4",
    "jsonschema": "4.21.1", "jsonschema-specifications": "2023.12.1", "keras": "2.13.1", "langchain": "0.1.4",
    "langchain-community": "0.0.16", "langchain-core": "0.1.17", "langcodes": "3.3.0", "langsmith": "0.0.85",
    "lightgbm": "4.1.0", "lightning-utilities": "0.10.1", "llvmlite": "0.41.1", "loguru": "0.7.2",
    "markdown": "3.5.2", "markdown-it-py": "3.0.0", "markupsafe": "2.1.4", "marshmallow": "3.20.2",
    "mdurl": "0.1.2", "more-itertools": "10.2.0", "mpmath": "1.3.0", "msgpack-python": "1.0.7",
    "multidict": "6.0.4", "multiprocess": "0.70.15", "murmurhash": "1.0.10", "mypy-extensions": "1.0.0",
    "networkx": "3.2.1", "nltk": "3.8.1", "numba": "0.58.1", "numpy": "1.25.2", "nvidia-ml-py": "12.535.133",
    "oauthlib": "3.2.2", "opencensus": "0.11.3", "opencensus-context": "0.1.3", "opt-einsum": "3.3.0",
    "packaging": "23.2", "pandas": "2.1.3", "pathy": "0.10.2", "patsy": "0.5.6", "peft": "0.7.1",
    "pillow": "10.2.0", "pip": "23.3.2", "pkgutil-resolve-name": "1.3.10", "platformdirs": "3.5.1",
    "pluggy": "1.4.0", "polars": "0.19.0", "preshed": "3.0.9", "prometheus-client": "0.19.0",
    "protobuf": "4.21.12", "psutil": "5.9.8", "py-spy": "0.3.14", "pyarrow": "12.0.1", "pyarrow-hotfix": "0.6",
    "pyasn1": "0.5.1", "pyasn1-modules": "0.3.0", "pycparser": "2.21", "pydantic": "1.10.13",
    "pygments": "2.17.2", "pyjwt": "2.8.0", "pyopenssl": "24.0.0", "pysocks": "1.7.1", "pytest": "7.4.4",
    "pytest-subtests": "0.11.0", "python-dateutil": "2.8.2", "python-flatbuffers": "23.5.26",
    "python-tzdata": "2023.4", "python-xxhash": "3.4.1", "pytorch": "2.1.1", "pytorch-lightning": "2.1.1",
    "pytz": "2023.4", "pyu2f": "0.1.5", "pyyaml": "6.0.1", "ray-core": "2.8.1", "ray-default": "2.8.1",
    "referencing": "0.33.0", "regex": "2023.12.25", "requests": "2.31.0", "requests-oauthlib": "1.3.1",
    "rich": "13.7.0", "rpds-py": "0.17.1", "rsa": "4.9", "safetensors": "0.3.3", "scikit-learn": "1.3.2",
    "scipy": "1.9.3", "sentence-transformers": "2.2.2", "sentencepiece": "0.1.99", "setproctitle": "1.3.3",
    "setuptools": "69.0.3", "shellingham": "1.5.4", "six": "1.16.0", "smart-open": "5.2.1", "sniffio": "1.3.0",
    "spacy": "3.7.2", "spacy-legacy": "3.0.12", "spacy-loggers": "1.0.5", "sqlalchemy": "2.0.24",
    "srsly": "2.4.8", "statsmodels": "0.14.0", "sympy": "1.12", "tenacity": "8.2.3", "tensorboard": "2.13.0",
    "tensorboard-data-server": "0.7.0", "tensorflow": "2.13.1", "tensorflow-base": "2.13.1",
    "tensorflow-estimator": "2.13.1", "termcolor": "2.4.0", "thinc": "8.2.2", "threadpoolctl": "3.2.0",
    "tokenizers": "0.15.1", "tomli": "2.0.1", "torchmetrics": "1.2.1", "torchvision": "0.16.1",
    "tqdm": "4.66.1", "transformers": "4.37.1", "typer": "0.9.0", "typing-extensions": "4.5.0",
    "typing-inspect": "0.9.0", "urllib3": "2.2.0", "virtualenv": "20.21.0", "wasabi": "1.1.2",
    "wcwidth": "0.2.13", "weasel": "0.3.4", "werkzeug": "3.0.1", "wheel": "0.42.0", "wrapt": "1.16.0",
    "xarray": "2023.11.0", "yarl": "1.9.4", "zipp": "3.17.0",
}

PROFILE = Profile(
    name="snomed-ct",
    description="DrivenData SNOMED CT Entity Linking (2024): /code_execution layout, Python 3.10, conda lock",
    source="drivendataorg/snomed-ct-entity-linking-runtime: runtime/entrypoint.sh, Makefile, "
           "runtime/conda-lock-cpu.yml, scripts/smoke_test_data.py",
    root="/code_execution",
    data="/code_execution/data",
    submission_dir="/code_execution/submission",
    output="submission.csv",
    log="/code_execution/submission/log.txt",
    private_log="/code_execution/submission/private_log.txt",
    python="3.10.13",
    # The test notes (examples/template/main.py at 54f7ae88c01590d0aa325c84b558cf99274175a1 reads
    # data/test_notes.csv) and the submission format: test files only, no training data, no answers.
    holds=("test_notes.csv", "submission_format.csv", "test_*"),
    packages=LOCKED,
    time_limit=None,
)
