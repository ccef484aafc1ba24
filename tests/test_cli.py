"""The command line contract: listing, unknown names, one-line user errors."""
from common.competition import Competition
from competitions import REGISTRY, names


def test_every_registered_competition_follows_the_protocol():
    for name in names():
        competition = REGISTRY.competition(name)
        assert isinstance(competition, Competition)
        assert competition.name == name and competition.platform in {"kaggle", "zindi", "drivendata"}


def test_list_shows_every_competition_with_platform_and_metric(compete):
    lines = compete("list").stdout.splitlines()
    assert lines[0].split()[:3] == ["name", "platform", "metric"]
    listed = {line.split()[0]: line.split()[1:3] for line in lines[1:]}
    assert listed["house-prices"] == ["kaggle", "rmsle"]
    assert set(listed) == set(names()) | {"PLATFORM:SLUG"}  # the generic entry serves any slug
    assert listed["PLATFORM:SLUG"] == ["kaggle|zindi|drivendata", "--metric"]


def test_unknown_competition_lists_known_ones(compete):
    result = compete("run", "titanic", "--data", ".", check=False)
    assert result.returncode == 2
    assert result.stderr.startswith("error: unknown competition 'titanic'; known: ")
    assert "house-prices" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_an_unknown_name_suggests_the_closest_ones(compete):
    result = compete("options", "house-price", check=False)
    assert result.returncode == 2
    assert result.stderr.startswith("error: unknown competition 'house-price'; did you mean house-prices? known: ")
    assert len(result.stderr.strip().splitlines()) == 1


def test_missing_data_folder_is_one_line(compete, tmp_path):
    result = compete("validate", "house-prices", tmp_path / "x.csv", "--data", tmp_path / "nowhere", check=False)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: {tmp_path / 'x.csv'}: file not found"]
    (tmp_path / "x.csv").write_text("Id,SalePrice\n1461,1\n")
    result = compete("validate", "house-prices", tmp_path / "x.csv", "--data", tmp_path / "nowhere", check=False)
    assert result.stderr.strip() == f"error: {tmp_path / 'nowhere'}: data folder not found"


def test_help_of_each_command_says_what_it_does(compete):
    for command, phrase in (("run", "print the CV score"), ("validate", "exit 1 listing every problem"),
                            ("fit", "Train only"), ("predict", "validated submission"),
                            ("score", "platform's metric")):
        assert phrase in " ".join(compete(command, "--help").stdout.split())


HEAVY = ("torch", "sklearn", "catboost", "fastai", "librosa", "geopandas")


def test_list_and_help_load_no_model_library():
    import subprocess
    import sys

    from conftest import ROOT
    probe = ("import sys\nfrom click.testing import CliRunner\nimport cli\n"
             "for args in (['list'], ['--help'], ['options', 'serengeti'], ['run', '--help']):\n"
             "    assert CliRunner().invoke(cli.main, args).exit_code == 0, args\n"
             f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""


def test_list_and_help_import_no_competition_package(tmp_path):
    """The registry's entries carry what `list` prints (pip's command table): `list`
    and `--help` import no competitions.X module, nor torch."""
    import os
    import subprocess
    import sys

    from conftest import ROOT
    probe = ("import sys\nfrom click.testing import CliRunner\nimport cli\n"
             "for args in (['list'], ['--help']):\n"
             "    assert CliRunner().invoke(cli.main, args).exit_code == 0, args\n"
             "print(' '.join(sorted(m for m in sys.modules if m.startswith('competitions.') or m.split('.')[0] == 'torch')))\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""


def test_options_prints_name_type_default_and_doc(compete):
    lines = compete("options", "serengeti").stdout.splitlines()
    rows = {line.split()[0]: line for line in lines}
    assert {"seed", "fast", "quiet", "epochs", "backbone", "image_width"} <= set(rows)
    assert rows["backbone"].split()[1:4] == ["Path", "|", "None"] and "weights" in rows["backbone"]
    assert rows["seed"].split()[1:3] == ["int", "0"]


def test_an_unknown_option_exits_2_naming_the_known_ones(compete, tmp_path):
    result = compete("fit", "house-prices", "--data", tmp_path, "--set", "fold=3", check=False, cwd=tmp_path)
    assert result.returncode == 2
    import dataclasses

    from competitions import REGISTRY
    known = ", ".join(field.name for field in dataclasses.fields(REGISTRY.competition("house-prices").options))   # in declaration order
    assert known.startswith("seed, fast, quiet, folds, ") and "l2_leaf_reg" in known
    assert result.stderr.strip() == f"error: house-prices: unknown option 'fold'; known: {known}"
    result = compete("run", "serengeti", "--data", tmp_path, "--set", "epochs=two", check=False, cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.strip() == "error: serengeti: epochs: 'two' is not an integer"
    config = tmp_path / "bad.toml"
    config.write_text("epochs = [\n")
    result = compete("run", "serengeti", "--data", tmp_path, "--config", config, check=False, cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.startswith(f"error: {config}: not readable as TOML")
    result = compete("run", "house-prices", "--data", tmp_path, "--metric", "auc", check=False, cwd=tmp_path)
    assert result.returncode == 2 and "house-prices is scored by rmsle only" in result.stderr
    assert not (tmp_path / "runs").exists()


def test_platform_names_are_checked(compete):
    result = compete("options", "kaggel:titanic", check=False)
    assert result.returncode == 2
    assert result.stderr.strip() == "error: 'kaggel:titanic': unknown platform 'kaggel'; known: kaggle, zindi, drivendata"


def test_validate_exits_1_for_an_empty_file(compete, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "sample_submission.csv").write_text("Id,SalePrice\n1461,1\n1462,1\n")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    result = compete("validate", "house-prices", empty, "--data", data, check=False)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [f"{empty}: 1 problem(s)",
                                          "  empty: the file is empty; expected the header Id,SalePrice and 2 rows"]


def test_a_reader_that_leaves_early_is_not_an_error(tmp_path):
    """`compete runtime profiles | head -1`: the pipe closes under the command, which ends
    quietly (no "failed unexpectedly" line, no traceback kept)."""
    import os
    import subprocess
    import sys
    from pathlib import Path
    read, write = os.pipe()
    os.close(read)   # the reader is gone before the first line is written
    environment = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "COMPETE_CACHE": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", "import cli; cli.main()", "runtime", "profiles"], stdout=write,
                          stderr=subprocess.PIPE, text=True, env=environment, timeout=120)
    os.close(write)
    assert done.returncode == 1 and done.stderr == ""
    assert not (tmp_path / "logs" / "last-error.txt").exists()
