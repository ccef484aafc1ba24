"""The command line contract: listing, unknown names, one-line user errors."""
from common.competition import Competition, get, names
from conftest import compete


def test_every_registered_competition_follows_the_protocol():
    for name in names():
        competition = get(name)
        assert isinstance(competition, Competition)
        assert competition.name == name and competition.platform in {"kaggle", "zindi", "drivendata"}


def test_list_shows_every_competition_with_platform_and_metric():
    lines = compete("list").stdout.splitlines()
    assert lines[0].split()[:3] == ["name", "platform", "metric"]
    listed = {line.split()[0]: line.split()[1:3] for line in lines[1:]}
    assert listed["house-prices"] == ["kaggle", "rmsle"]
    assert set(listed) == set(names())


def test_unknown_competition_lists_known_ones():
    result = compete("run", "titanic", "--data", ".", check=False)
    assert result.returncode == 2
    assert result.stderr.startswith("error: unknown competition 'titanic'; known: ")
    assert "house-prices" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_missing_data_folder_is_one_line(tmp_path):
    result = compete("validate", "house-prices", tmp_path / "x.csv", "--data", tmp_path / "nowhere", check=False)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: {tmp_path / 'x.csv'}: file not found"]
    (tmp_path / "x.csv").write_text("Id,SalePrice\n1461,1\n")
    result = compete("validate", "house-prices", tmp_path / "x.csv", "--data", tmp_path / "nowhere", check=False)
    assert result.stderr.strip() == f"error: {tmp_path / 'nowhere'}: data folder not found"


def test_help_of_each_command_says_what_it_does():
    for command, phrase in (("run", "print the CV score"), ("validate", "exit 1 listing every problem"),
                            ("fit", "Train only"), ("predict", "validated submission"),
                            ("score", "platform's metric")):
        assert phrase in " ".join(compete(command, "--help").stdout.split())
