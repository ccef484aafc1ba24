"""The Kaggle notebook profiles judge code as Kaggle's image would: what the image holds
imports, what it lacks is named, and a requirement outside a pin is refused."""
from __future__ import annotations

from common.runtimes import environment, kaggle_notebook


def check(tmp_path, source: str, requirements: str = "") -> list[str]:
    code = tmp_path / "code"
    code.mkdir()
    (code / "main.py").write_text(source)
    if requirements:
        (code / "requirements.txt").write_text(requirements)
    return environment.check(code, kaggle_notebook.PROFILE)


def test_the_image_s_own_libraries_import(tmp_path):
    source = ("import numpy, pandas, polars, pyarrow, sklearn, lightgbm, xgboost, catboost, torch, onnx\n"
              "import grpc, google.protobuf, tensorflow, jax, transformers, cv2, PIL\n")
    assert check(tmp_path, source) == []


def test_onnxruntime_is_not_in_the_image(tmp_path):
    problems = check(tmp_path, "import onnxruntime\n")
    assert len(problems) == 1 and "onnxruntime" in problems[0]


def test_the_cuda_stack_is_absent_on_cpu(tmp_path):
    problems = check(tmp_path, "import cudf\n")
    assert len(problems) == 1 and "cudf" in problems[0]
    # Dockerfile.tmpl uninstalls what Colab's base has
    assert not kaggle_notebook.PROFILE.version_of("google-cloud-bigquery-storage")[0]


def test_a_requirement_against_kaggle_s_pin_is_refused(tmp_path):
    problems = check(tmp_path, "import sklearn\n", requirements="scikit-learn>=1.5\n")
    assert len(problems) == 1 and "1.2.2" in problems[0]


def test_gpu_variant_holds_the_cuda_stack_and_the_shorter_cap():
    gpu, cpu = kaggle_notebook.GPU_PROFILE, kaggle_notebook.PROFILE
    assert gpu.version_of("cuml-cu12")[0] and gpu.version_of("pycuda")[0]
    assert not cpu.version_of("cuml-cu12")[0] and not cpu.version_of("pycuda")[0]
    assert (cpu.time_limit, gpu.time_limit) == (9 * 3600, 2 * 3600)
