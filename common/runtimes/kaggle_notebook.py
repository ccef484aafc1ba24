"""Kaggle notebooks (CPU and GPU), as a code competition's rerun runs them.

Read from (each fact with the repository, path and commit it came from):
- Kaggle/docker-python Dockerfile.tmpl (stored versions b4fdbdad165297e970081efaceae97cfe0ee43f2
  and 00192f2d02aeb5f9afa6356e6a9f561e2a622e31; the 2026-08 commit 78aaa43 is not stored in
  the index): FROM ${BASE_IMAGE}:${BASE_IMAGE_TAG}, Colab's runtime image (PR #1444 "Use
  Colab as a base image"); `pip freeze | grep -E 'tensorflow|keras|torch|jax|lightgbm'` of
  the base is merged with kaggle_requirements.txt and installed with `uv pip install
  --system`, so those come at the base's versions, pinned nowhere in the repository;
  google-cloud-bigquery-storage is uninstalled; learntools, libpysal==4.9.2, graphviz and
  the BigQuery_Helper (bq_helper) are installed by the Dockerfile itself, pycuda and a GPU
  LightGBM in the GPU variant only; no USER (the notebook runs as root) and no WORKDIR;
  ENV PYTHONPATH=:$PYTHONPATH:/opt/facets/facets_overview/python/ (its empty first entry
  puts the working directory on the path), MKL_THREADING_LAYER=GNU,
  TESSERACT_PATH=/usr/bin/tesseract, PYTHONUSERBASE=/root/.local, CUDA_VERSION="" on CPU,
  CUDA_HOME=/usr/local/cuda on GPU. PR #1496 "Python 3.12 bump" moved the image to 3.12.
- Kaggle/docker-python kaggle_requirements.txt at 01d659bb3e2b2b048752d1670cfd7f51b9dc6d92,
  the newest stored version (late 2025: b/445960030, kaggle>=1.7.4.2, google-adk): the
  exact pins below; other entries are listed without a version (a range is no pin).
  catboost is listed unpinned; xgboost==2.0.3 and onnx==1.18.0 are pinned there (the
  issue's 78aaa43 is said to leave xgboost to Colab and onnx unpinned: not verifiable
  here); onnxruntime is in neither list.
- googlecolab/backend-info pip-freeze.gpu.txt at 4647a1df5425c1f7b244eb7378c55348fd0dd100
  (cp312 wheels, early 2026) for the names of what the Colab base holds, and
  os-info-gpu.txt at 66982a15e8f58adbbb17cf4b656cb19f36f984b7: Ubuntu 22.04.5, Python
  3.12.12. Versions are not taken from it: the base tag Kaggle builds on moves. The CPU
  variant drops the CUDA-only distributions (names matched below; an inference: no
  3.12 CPU freeze is stored). Colab moved to Python 3.13 on 2026-08-25
  (googlecolab/colabtools#6081): Kaggle's next base bump brings 3.13.
- Layout: the competition's files read-only at /kaggle/input/competitions/<slug>/ in
  recent competitions (community evidence) and /kaggle/input/<slug>/ in the official
  templates (kaggle_evaluation gateways default to it: CMI's
  /kaggle/input/cmi-detect-behavior-with-sensor-data/test.csv, Mitsui's
  /kaggle/input/mitsui-commodity-prediction-challenge/), attached datasets at
  /kaggle/input/<dataset-slug>/, models at /kaggle/input/<model>/<framework>/<variation>/
  <version>/; /kaggle/working is the working directory and the saved output (20 GB),
  /kaggle/temp is scratch that is not saved (Kaggle's default notebook template: community
  evidence), /tmp as on any Linux.
- The rerun: KAGGLE_IS_COMPETITION_RERUN is set (kaggle_evaluation's templates.py tests
  `is not None`, the gateways test truthiness; Kaggle's value is not public, any non-empty
  value behaves the same); KAGGLE_KERNEL_RUN_TYPE is "Batch" in a saved ("Save & Run
  All") run (community evidence). Time caps are per competition ("Code Requirements"):
  CPU 9 h and GPU 2 h are the common defaults (COMPETITIONS.md).
"""
from common.runtimes import Profile

# kaggle_requirements.txt @ 01d659bb: exact pins; libpysal==4.9.2 from Dockerfile.tmpl
PINNED = {
    "geopandas": "0.14.4", "google-cloud-translate": "3.12.1", "ipywidgets": "8.1.5", "jupyter-lsp": "1.5.1",
    "jupyter-server": "2.12.5", "libpysal": "4.9.2", "nbconvert": "6.4.5", "onnx": "1.18.0",
    "scikit-learn": "1.2.2", "seaborn": "0.12.2", "shap": "0.44.1", "tpot": "0.12.1", "xgboost": "2.0.3",
    "ydf": "0.9.0",
}

# kaggle_requirements.txt @ 01d659bb without an exact version, and what Dockerfile.tmpl installs itself
KAGGLE = (
    "Boruta", "Cartopy", "ImageHash", "Janome", "PyArabic", "PyUpSet", "Pympler", "Rtree", "shapely", "SimpleITK",
    "Theano", "Wand", "annoy", "arrow", "bayesian-optimization", "boto3", "catboost", "category-encoders", "cesium",
    "comm", "cytoolz", "datasets", "deap", "dipy", "docker", "easyocr", "eli5", "emoji", "fastcore", "fastai",
    "fasttext", "featuretools", "fiona", "fury", "fuzzywuzzy", "geojson", "gensim", "google-adk",
    "google-cloud-aiplatform", "google-cloud-videointelligence", "google-cloud-vision", "google-genai", "gpxpy",
    "h2o", "haversine", "hep-ml", "igraph", "ipympl", "isoweek", "jedi", "jupyterlab", "jupyterlab-lsp", "kaggle",
    "kaggle-environments", "keras-cv", "keras-nlp", "keras-tuner", "kmodes", "kornia", "langid", "lime",
    "line_profiler", "mamba", "matplotlib", "mlcrate", "mne", "mpld3", "nbdev", "nilearn", "olefile",
    "openslide-bin", "openslide-python", "optuna", "pandas-profiling", "pandasql", "papermill", "path", "path.py",
    "pdf2image", "plotly-express", "preprocessing", "pudb", "pyLDAvis", "pycryptodome", "pydegensac", "pydicom",
    "pyemd", "pyexcel-ods", "pymc3", "pymongo", "pypdf", "pytesseract", "python-lsp-server", "pytorch-ignite",
    "pytorch-lightning", "qgrid", "qtconsole", "ray", "rgf-python", "s3fs", "scikit-learn-intelex",
    "scikit-multilearn", "scikit-optimize", "scikit-plot", "scikit-surprise", "segment-anything", "squarify",
    "tensorflow-cloud", "tensorflow-io", "tensorflow-text", "tensorflow_decision_forests", "torchinfo",
    "torchmetrics", "torchtune", "transformers", "vtk", "wavio", "xvfbwrapper", "ydata-profiling",
    # Dockerfile.tmpl: learntools from git, BigQuery_Helper as bq_helper, `pip install graphviz`
    "learntools", "bq_helper", "graphviz",
)

# googlecolab/backend-info pip-freeze.gpu.txt @ 4647a1df: the names only
COLAB_BASE = """
    absl-py accelerate access affine aiofiles aiohappyeyeballs aiohttp aiosignal aiosqlite alabaster albucore
    albumentations ale-py alembic altair annotated-doc annotated-types antlr4-python3-runtime anyio anywidget
    apsw apswutils argon2-cffi argon2-cffi-bindings array_record arrow arviz astropy astropy-iers-data
    astunparse atpublic attrs audioread Authlib autograd babel backcall beartype beautifulsoup4 betterproto
    bigframes bigquery-magics bleach blinker blis blobfile blosc2 bokeh Bottleneck bqplot branca brotli
    CacheControl cachetools catalogue certifi cffi chardet charset-normalizer clarabel click click-plugins cligj
    cloudpathlib cloudpickle cmake cmdstanpy colorcet colorlover colour community confection cons contourpy
    cramjam cryptography cucim-cu12 cuda-bindings cuda-core cuda-pathfinder cuda-python cuda-toolkit cudf-cu12
    cudf-polars-cu12 cufflinks cuml-cu12 cupy-cuda12x curl_cffi cuvs-cu12 cvxopt cvxpy cycler cyipopt cymem
    Cython dask dask-cuda dask-cudf-cu12 dataproc-spark-connect datasets db-dtypes dbus-python debugpy decorator
    defusedxml deprecation diffusers dill distributed distributed-ucxx-cu12 distro dlib dm-tree docstring_parser
    docutils dopamine_rl duckdb earthengine-api easydict editdistance eerepr einops en_core_web_sm entrypoints
    esda et_xmlfile etils etuples Farama-Notifications fastai fastapi fastcore fastdownload fastjsonschema
    fastlite fastprogress fasttransform ffmpy filelock fiona firebase-admin Flask flatbuffers flax folium
    fonttools fqdn frozendict frozenlist fsspec future gast gcsfs GDAL gdown geemap geocoder geographiclib
    geopandas geopy giddy gin-config gitdb GitPython glob2 google google-adk google-ai-generativelanguage
    google-api-core google-api-python-client google-auth google-auth-httplib2 google-auth-oauthlib
    google-cloud-aiplatform google-cloud-appengine-logging google-cloud-audit-log google-cloud-bigquery
    google-cloud-bigquery-connection google-cloud-bigquery-storage google-cloud-bigtable google-cloud-core
    google-cloud-dataproc google-cloud-datastore google-cloud-discoveryengine google-cloud-firestore
    google-cloud-functions google-cloud-iam google-cloud-language google-cloud-logging google-cloud-monitoring
    google-cloud-pubsub google-cloud-resource-manager google-cloud-secret-manager google-cloud-spanner
    google-cloud-speech google-cloud-storage google-cloud-trace google-cloud-translate google-colab
    google-crc32c google-genai google-generativeai google-pasta google-resumable-media googleapis-common-protos
    googledrivedownloader gradio gradio_client grain graphviz greenlet groovy grpc-google-iam-v1
    grpc-interceptor grpcio grpcio-status grpclib gspread gspread-dataframe gym gym-notices gymnasium h11 h2
    h5netcdf h5py hdbscan hf-xet highspy holidays holoviews hpack html5lib httpcore httpimport httplib2
    httptools httpx httpx-sse huggingface_hub humanize hyperframe hyperopt ibis-framework idna ImageIO
    imageio-ffmpeg imagesize imbalanced-learn immutabledict importlib_metadata importlib_resources imutils
    inequality inflect iniconfig intel-cmplr-lib-ur intel-openmp ipyevents ipyfilechooser ipykernel ipyleaflet
    ipyparallel ipython ipython-genutils ipython-sql ipytree ipywidgets isoduration itsdangerous jaraco.classes
    jaraco.context jaraco.functools jax jax-cuda12-pjrt jax-cuda12-plugin jaxlib jeepney jieba Jinja2 jiter
    joblib jsonpatch jsonpickle jsonpointer jsonschema jsonschema-specifications jupyter-console jupyter-events
    jupyter-leaflet jupyter_client jupyter_core jupyter_kernel_gateway jupyter_server jupyter_server_terminals
    jupyterlab_pygments jupyterlab_widgets jupytext kaggle kagglehub keras keras-hub keras-nlp keyring
    keyrings.google-artifactregistry-auth kiwisolver langchain langchain-core langgraph langgraph-checkpoint
    langgraph-prebuilt langgraph-sdk langsmith lark launchpadlib lazr.restfulclient lazr.uri lazy_loader
    libclang libcudf-cu12 libcugraph-cu12 libcuml-cu12 libcuvs-cu12 libkvikio-cu12 libpysal libraft-cu12
    librmm-cu12 librosa libucx-cu12 libucxx-cu12 lightgbm linkify-it-py llvmlite locket logical-unification lxml
    Mako mapclassify Markdown markdown-it-py MarkupSafe matplotlib matplotlib-inline matplotlib-venn mcp
    mdit-py-plugins mdurl mgwr miniKanren missingno mistune mizani mkl ml_dtypes mlxtend mmh3 momepy
    more-itertools moviepy mpmath msgpack multidict multipledispatch multiprocess multitasking murmurhash
    music21 namex narwhals natsort nbclassic nbclient nbconvert nbformat ndindex nest-asyncio networkx nibabel
    nltk notebook notebook_shim numba numba-cuda numexpr numpy nvidia-cublas-cu12 nvidia-cuda-cccl-cu12
    nvidia-cuda-cupti-cu12 nvidia-cuda-nvcc-cu12 nvidia-cuda-nvrtc-cu12 nvidia-cuda-runtime-cu12
    nvidia-cudnn-cu12 nvidia-cufft-cu12 nvidia-cufile-cu12 nvidia-curand-cu12 nvidia-cusolver-cu12
    nvidia-cusparse-cu12 nvidia-cusparselt-cu12 nvidia-libnvcomp-cu12 nvidia-ml-py nvidia-nccl-cu12
    nvidia-nvimgcodec-cu12 nvidia-nvjitlink-cu12 nvidia-nvshmem-cu12 nvidia-nvtx-cu12 nvtx nx-cugraph-cu12
    oauth2client oauthlib omegaconf onemkl-license openai opencv-contrib-python opencv-python
    opencv-python-headless openpyxl opentelemetry-api opentelemetry-exporter-gcp-logging
    opentelemetry-exporter-gcp-monitoring opentelemetry-exporter-gcp-trace
    opentelemetry-exporter-otlp-proto-common opentelemetry-exporter-otlp-proto-http opentelemetry-proto
    opentelemetry-resourcedetector-gcp opentelemetry-sdk opentelemetry-semantic-conventions opt_einsum optax
    optree orbax-checkpoint orjson ormsgpack osqp overrides packaging pandas pandas-datareader pandas-gbq
    pandas-stubs pandocfilters panel param parso parsy partd patsy peewee peft pexpect pickleshare pillow pip
    platformdirs plotly plotnine pluggy plum-dispatch pointpats polars polars-runtime-32 pooch portpicker
    preshed prettytable proglog progressbar2 prometheus_client promise prompt_toolkit propcache prophet
    proto-plus protobuf psutil psycopg2 psygnal ptyprocess PuLP py-cpuinfo py4j pyarrow pyasn1 pyasn1_modules
    pycairo pycocotools pycparser pycryptodomex pydantic pydantic-settings pydantic_core pydata-google-auth
    pydot pydotplus PyDrive2 pydub pyerfa pygame pygit2 Pygments PyGObject PyJWT pylibcudf-cu12
    pylibcugraph-cu12 pylibraft-cu12 pymc pynndescent pyogrio pyomo PyOpenGL pyOpenSSL pyparsing pyperclip
    pyproj pysal pyshp PySocks pyspark pytensor pytest python-apt python-box python-dateutil python-dotenv
    python-fasthtml python-json-logger python-louvain python-multipart python-slugify python-snappy python-utils
    pytz pyviz_comms PyWavelets PyYAML pyzmq quantecon raft-dask-cu12 rapids-dask-dependency rapids-logger
    rasterio rasterstats ratelim referencing regex requests requests-oauthlib requests-toolbelt
    requirements-parser rfc3339-validator rfc3986-validator rfc3987-syntax rich rmm-cu12 roman-numerals
    roman-numerals-py rpds-py rpy2 rsa rtree ruff safehttpx safetensors scikit-image scikit-learn scipy scooby
    scs seaborn SecretStorage segregation semantic-version Send2Trash sentence-transformers sentencepiece
    sentry-sdk setuptools shap shapely shellingham simple-parsing simplejson simsimd six sklearn-compat
    sklearn-pandas slicer smart_open smmap sniffio snowballstemmer sortedcontainers soundfile soupsieve soxr
    spacy spacy-legacy spacy-loggers spaghetti spanner-graph-notebook spglm Sphinx sphinxcontrib-applehelp
    sphinxcontrib-devhelp sphinxcontrib-htmlhelp sphinxcontrib-jsmath sphinxcontrib-qthelp
    sphinxcontrib-serializinghtml spint splot spopt spreg SQLAlchemy sqlalchemy-spanner sqlglot sqlparse srsly
    sse-starlette stanio starlette statsmodels stringzilla stumpy sympy tables tabulate tbb tblib tcmlib
    tenacity tensorboard tensorboard-data-server tensorflow tensorflow-datasets tensorflow-hub
    tensorflow-metadata tensorflow-probability tensorflow-text tensorflow_decision_forests tensorstore termcolor
    terminado text-unidecode textblob tf-slim tf_keras thinc threadpoolctl tifffile tiktoken timm tinycss2
    tobler tokenizers toml tomlkit toolz torch torchao torchaudio torchcodec torchdata torchsummary torchtune
    torchvision tornado tqdm traitlets traittypes transformers treelite treescope triton tsfresh tweepy
    typeguard typer typer-slim types-pytz types-setuptools typing-inspection typing_extensions tzdata tzlocal
    uc-micro-py ucxx-cu12 umap-learn umf uri-template uritemplate urllib3 uuid_utils uvicorn uvloop
    vega-datasets wadllib wandb wasabi watchdog watchfiles wcwidth weasel webcolors webencodings
    websocket-client websockets Werkzeug wheel widgetsnbextension wordcloud wrapt wurlitzer xarray
    xarray-einstats xgboost xlrd xxhash xyzservices yarl ydf yellowbrick yfinance zict zipp zstandard
""".split()  # noqa: SIM905  (a block of 724 names reads better than 724 literals)

UNINSTALLED = ("google-cloud-bigquery-storage",)  # Dockerfile.tmpl: `uv pip uninstall --system`

# CUDA builds and the RAPIDS stack Colab's GPU image adds; read from the names, not from a CPU freeze
CUDA_ONLY = ("cu12", "cuda", "nvidia", "rapids", "nvtx", "cupy", "cudf", "cuml", "cugraph", "cuvs", "raft", "rmm",
             "ucx", "kvikio")


def _packages(gpu: bool) -> dict[str, str | None]:
    names = [name for name in COLAB_BASE if name not in UNINSTALLED]
    if not gpu:
        names = [name for name in names if not any(marker in name.lower() for marker in CUDA_ONLY)]
    extra = ("pycuda",) if gpu else ()  # Dockerfile.tmpl, GPU only
    return {**{name: None for name in (*names, *KAGGLE, *extra)}, **PINNED}


COMMON = {
    "source": "Kaggle/docker-python: Dockerfile.tmpl @b4fdbdad, kaggle_requirements.txt @01d659bb; "
              "googlecolab/backend-info: pip-freeze.gpu.txt @4647a1df, os-info-gpu.txt @66982a15; "
              "kaggle_evaluation (core/templates.py, core/base_gateway.py) in competitions' data folders",
    "platform": "kaggle",
    "kind": "notebook",
    "root": "/kaggle/working",
    "data": "/kaggle/input/competitions/{slug}",
    "data_aliases": ("/kaggle/input/{slug}",),  # the official templates' path; both are served
    "datasets": "/kaggle/input/{dataset}",
    "writable": ("/kaggle/temp", "/tmp"),  # besides root, /kaggle/working
    "output": "submission.csv",
    "python": "3.12.12",
    "environment": {"KAGGLE_IS_COMPETITION_RERUN": "True", "KAGGLE_KERNEL_RUN_TYPE": "Batch"},
    "holds": ("**",),  # a Kaggle notebook sees all the competition's public files (answers/ is never public)
}

PROFILE = Profile(
    name="kaggle-notebook",
    description="Kaggle notebook, CPU: Python 3.12 on Colab's runtime image, input under /kaggle/input, 9 h",
    packages=_packages(gpu=False),
    time_limit=9 * 3600,
    gpu="none: CPU only",
    **COMMON,
)

GPU_PROFILE = Profile(
    name="kaggle-notebook-gpu",
    description="Kaggle notebook, GPU: Python 3.12 on Colab's GPU runtime image (CUDA 12), 2 h",
    packages=_packages(gpu=True),
    time_limit=2 * 3600,
    gpu="an NVIDIA GPU (machine_shape NvidiaTeslaT4, T4 x2 or L4); CPU where none is present",
    **COMMON,
)
