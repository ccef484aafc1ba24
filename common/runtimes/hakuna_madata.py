"""DrivenData "Hakuna Ma-data" (camera-trap Serengeti), the Python CPU/GPU runtime.

Read from drivendataorg/ai4earth-serengeti-runtime:
- runtime/entrypoint.sh: `cd /inference`; "GPU unavailable; falling back to CPU." without
  nvidia-smi; `unzip ./submission/submission.zip -d ./`; `python main.py`; main.py must
  leave `submission.csv` in its own folder, which is copied to
  ./submission/submission.csv (a missing file fails the run); all output tee'd to
  /inference/submission/log.txt.
- run.sh: `docker run --network none`, the data bound read-only at /inference/data, the
  submission folder bound at /inference/submission.
- runtime/py-cpu.yml and runtime/py-gpu.yml: the conda environments `py-cpu` / `py-gpu`
  (listed below; the GPU file differs only in CUDA builds: tensorflow-gpu, onnxruntime-gpu).
- benchmark/inference-py/main.py: writes `submission.csv` into the working directory.
The 8 h limit is the competition's (COMPETITIONS.md).

The repository has no lock file, so besides the pinned packages of the environment
files, `packages` lists (version None) the Python distributions those releases bring
as dependencies, from their own metadata: numpy, python-dateutil and pytz with pandas;
joblib with scikit-learn; the tensorflow 1.14 stack; fastai 1.0.57's requirements
(spacy among them, and through it thinc and tqdm); scikit-image and matplotlib's. Nothing else is installed and nothing can be at run time.
"""
from common.runtimes import Profile

PINNED = {
    "fastai": "1.0.57",
    "lightgbm": "2.2.1",
    "mahotas": "1.4.7",
    "opencv": "3.4.2",
    "py-opencv": "3.4.2",
    "pandas": "0.25.1",
    "pillow": "6.1.0",
    "py-xgboost": "0.90",
    "xgboost": "0.90",
    "python-dotenv": "0.10.3",
    "pytorch": "1.2.0",
    "torchvision": "0.4.0",
    "scikit-image": "0.15.0",
    "scikit-learn": "0.21.2",
    "scipy": "1.3.1",
    "tensorflow": "1.14.0",
    "onnxruntime": "1.1.0",
}

DEPENDENCIES = (
    # pandas, scipy, scikit-learn, opencv, lightgbm, xgboost
    "numpy", "python-dateutil", "pytz", "six", "joblib",
    # tensorflow 1.14
    "absl-py", "astor", "gast", "google-pasta", "grpcio", "h5py", "keras-applications", "keras-preprocessing",
    "markdown", "protobuf", "tensorboard", "tensorflow-estimator", "termcolor", "werkzeug", "wrapt",
    # fastai 1.0.57
    "beautifulsoup4", "bottleneck", "fastprogress", "matplotlib", "numexpr", "nvidia-ml-py3", "packaging",
    "pyyaml", "requests", "spacy", "typing", "dataclasses",
    # spacy 2 (for fastai.text) and thinc 7, which requires tqdm: not in the environment files, but installed
    "thinc", "cymem", "preshed", "murmurhash", "srsly", "wasabi", "blis", "plac", "jsonschema", "tqdm",
    # scikit-image 0.15 and matplotlib
    "imageio", "networkx", "pywavelets", "cycler", "kiwisolver", "pyparsing",
    # conda's python itself
    "pip", "setuptools", "wheel",
)

PROFILE = Profile(
    name="hakuna-madata",
    description="DrivenData Hakuna Ma-data (serengeti): Python 3.6, pytorch 1.2, tensorflow 1.14, onnxruntime 1.1",
    source="drivendataorg/ai4earth-serengeti-runtime: runtime/entrypoint.sh, run.sh, runtime/py-cpu.yml, "
           "runtime/py-gpu.yml, benchmark/inference-py/main.py",
    root="/inference",
    data="/inference/data",
    submission_dir="/inference/submission",
    output="submission.csv",
    log="/inference/submission/log.txt",
    python="3.6.9",
    # The test metadata, the submission format and the test images; no training file, no answers.
    holds=("test_metadata.csv", "submission_format.csv"),
    holds_listed={"test_metadata.csv": "file_name"},
    packages={**PINNED, **{name: None for name in DEPENDENCIES}},
    time_limit=8 * 3600,
)
