"""The `compete` command: parse, call, print. No logic lives here.

Every command reaches a competition through the one protocol in
common/competition.py, so no command branches on a competition's name.
"""
from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import click

from common import io
from common.registry import PLATFORMS
from common.submission import InvalidSubmission, described

COMPETITION = click.argument("name", metavar="COMP")
DATA = click.option("--data", "data_dir", required=True, type=click.Path(path_type=Path),
                    help="The platform's data folder, as unzipped (zip files inside are read too).")
SEED = click.option("--seed", default=0, show_default=True, help="Random seed: same seed, same data, same bytes.")
QUIET = click.option("--quiet", is_flag=True, help="No progress or log on the terminal (the run's log.txt still has it).")
METRIC = click.option("--metric", help="For a PLATFORM:SLUG competition: accuracy, auc, logloss, rmse, rmsle, mae, f1, "
                                        "f1_macro (or the platform's spelling).")
SCHEDULER = click.option("--scheduler", metavar="ADDRESS", help="A Dask scheduler (tcp://HOST:8786) for the data stages; default: this machine, nothing started.")


def user_errors(function):
    """Turn a user error (or a missing optional dependency) into one line on stderr and
    exit 2 (1 for a failed check, io.CheckFailed); a bug is one line too, exit 2, its
    traceback kept in a file; never a traceback on the terminal."""
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except InvalidSubmission as invalid:
            for line in invalid.lines():
                click.echo(line)
            sys.exit(1)
        except io.InputError as error:
            click.echo(f"error: {error}", err=True)
            sys.exit(error.exit_code)
        except io.Unexpected as error:  # a bug inside a stage: one line naming it, the traceback kept
            click.echo(f"error: {error}", err=True)
            sys.exit(error.exit_code)
        except ModuleNotFoundError as error:
            from common.registry import missing_dependency
            message = missing_dependency(error)
            if message is None:
                raise
            click.echo(f"error: {message}", err=True)
            sys.exit(2)
        except click.ClickException:
            raise
        except BrokenPipeError:  # `compete runs COMP | head`: the reader left; nothing more to say to it
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())   # Python's own recipe (signal docs)
            sys.exit(1)
        except KeyboardInterrupt as interrupt:  # Ctrl-C, or SIGTERM inside a run (common.runs.Interrupted)
            click.echo(f"{getattr(interrupt, 'message', 'interrupted')}", err=True)
            sys.exit(getattr(interrupt, "exit_code", 130))
        except Exception as error:  # a bug, not the user's input: one line, the traceback kept
            if os.environ.get("COMPETE_DEBUG"):
                raise
            click.echo(f"error: {unexpected(function.__name__, error)}", err=True)
            sys.exit(2)
    return wrapper


def unexpected(command: str, error: Exception) -> str:
    """Keep the traceback of an unexpected error in a log file and say where it is."""
    import traceback
    log_file = io.cache_dir("logs") / "last-error.txt"
    io.write_text(log_file, "".join(traceback.format_exception(error)))
    return (f"{command.replace('_', ' ')} failed unexpectedly: {type(error).__name__}: {' '.join(str(error).split())[:200]} "
            f"(traceback in {log_file})")


def _competition(name: str, metric: str | None = None):
    from competitions import REGISTRY
    return REGISTRY.competition(name, metric)


def run_options(function):
    """The options every training command takes; they reach the command as `given`,
    the options of the competition's dataclass the user set, in order of precedence:
    the class defaults < --config FILE.toml < --set KEY=VALUE < --seed/--fast/--quiet."""
    @click.option("--seed", type=int, help="Random seed: same seed, same data, same bytes.  [default: 0]")
    @click.option("--fast", is_flag=True, default=None, help="A quick, smaller run for smoke tests and iteration.")
    @click.option("--quiet", is_flag=True, default=None, help="No progress or log on the terminal (the run's log.txt still has it).")
    @click.option("--set", "assignments", multiple=True, metavar="KEY=VALUE",
                  help="Set one of the competition's options (repeatable); `compete options COMP` lists them.")
    @click.option("--config", "config_file", type=click.Path(path_type=Path),
                  help="A TOML file of options (KEY = VALUE lines); --set wins over it.")
    @functools.wraps(function)
    def wrapper(*args, seed, fast, quiet, assignments, config_file, **kwargs):
        from common import options
        given = options.read_toml(config_file) if config_file else {}
        given.update(options.parse_assignments(assignments))
        flags = {"seed": seed, "fast": fast, "quiet": quiet}
        given.update({key: value for key, value in flags.items() if value is not None})
        return function(*args, given=given, **kwargs)
    return wrapper


def _options(competition, given: dict):
    from common import options
    return options.make_options(competition.options, given, source=competition.name)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main():
    """Go from a platform's data folder to a validated submission, for Kaggle, Zindi
    and DrivenData competitions, and host competitions of your own.

    \b
    Typical use:
      compete list
      compete data fetch house-prices --out data/house-prices
      compete run house-prices --data data/house-prices
      compete validate house-prices submissions/house-prices/<run>.csv --data data/house-prices
    """


@main.command("list")
@user_errors
def list_command():
    """Competitions with their platform, metric and where their data can come from."""
    from competitions import REGISTRY
    rows = [("name", "platform", "metric", "data"), *REGISTRY.listing(Path("data"))]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


@main.command("options")
@COMPETITION
@user_errors
def options_command(name):
    """The options COMP's runs take: name, type, default and doc, one line each.
    Set them with `--set KEY=VALUE` or `--config FILE.toml` on `run` and `fit`."""
    from common import options
    rows = [(row.name, row.type, repr(row.default) if isinstance(row.default, str) else str(row.default), row.doc)
            for row in options.describe(_competition(name).options)]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        click.echo("  ".join([*(cell.ljust(width) for cell, width in zip(row, widths)), row[3]]).rstrip())


@main.group()
def data():
    """Get a competition's data: real files offline, synthetic files, or the platform's."""


@data.command("fetch")
@COMPETITION
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Folder to write the platform files into.")
@click.option("--from", "from_zip", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Use this zip downloaded from the platform instead of the offline copy.")
@user_errors
def data_fetch(name, out, from_zip):
    """Real competition data that can be had offline, checked against pinned hashes."""
    for path in _competition(name).fetch(out, from_zip=from_zip):
        click.echo(path)


@data.command("synth")
@COMPETITION
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Folder to write the platform files and answers/ into.")
@SEED
@click.option("--scale", type=click.Choice(["small", "full"]), default="small", show_default=True,
              help="small: seconds to make, for tests; full: the real competition's size.")
@user_errors
def data_synth(name, out, seed, scale):
    """Format-faithful synthetic data with its answer key in OUT/answers/."""
    competition = _competition(name)
    competition.synth(Path(out), seed=seed, scale=scale)
    click.echo(out)


@data.command("download")
@COMPETITION
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Folder to unzip the platform files into.")
@QUIET
@user_errors
def data_download(name, out, quiet):
    """The platform's files, with your credentials, unzipped into OUT (resumes a partial download)."""
    from common import platforms
    for path in platforms.download(_competition(name), out, quiet=quiet):
        click.echo(path)


@main.command()
@COMPETITION
@DATA
@click.option("--out", type=click.Path(path_type=Path), help="Submission file (default submissions/COMP/<run-id>.csv).")
@click.option("--run-dir", type=click.Path(path_type=Path), help="Run directory (default runs/COMP/<run-id>/).")
@METRIC
@SCHEDULER
@user_errors
@run_options
def run(name, data_dir, out, run_dir, metric, scheduler, given):
    """Load, fit, predict and validate; print the CV score and the submission path."""
    from common import runs
    competition = _competition(name, metric)
    result = runs.run(competition, data_dir, _options(competition, given), out=out, run_dir=run_dir,
                      scheduler=scheduler)
    if result.cv_score is not None:
        click.echo(f"cv {result.metric}: {result.cv_score:.5f}")
    click.echo(f"run: {result.run_dir}")
    click.echo(f"submission: {result.submission}")


@main.command()
@COMPETITION
@DATA
@click.option("--trials", required=True, type=click.IntRange(min=1), help="Finished trials the study should hold (a resumed study counts its own).")
@click.option("--minutes", type=click.FloatRange(min=0, min_open=True), help="Start no trial after this many minutes.")
@click.option("--search", "searches", multiple=True, metavar="KEY=LOW..HIGH|A,B,C",
              help="Search this option over a range or choices (repeatable); replaces its declared range.")
@click.option("--storage", metavar="URL", help="An Optuna storage URL (sqlite:///..., postgresql://...), shared by machines "
                                                "running one study; default: runs/COMP/studies.db.")
@click.option("--study", "study", metavar="NAME", help="The study's name; default: one named for these settings, so the same command resumes it.")
@METRIC
@user_errors
@run_options
def tune(name, data_dir, trials, minutes, searches, storage, study, metric, given):
    """Search the options COMP declares with Optuna (TPE, median pruning on per-fold
    scores): every trial a run; the study is stored, so a killed tune resumes. Prints
    the best trial and, last, the --set line that reproduces it."""
    from common import options, runs, tune as tuning
    competition = _competition(name, metric)
    search = {key: value for key, value in (pair.partition("=")[::2] for pair in searches)}
    bad = [pair for pair in searches if "=" not in pair]
    if bad:
        raise io.InputError(f"--search {bad[0]!r}: expected KEY=LOW..HIGH or KEY=A,B,C")
    options.make_options(competition.options, given, source=name)
    result = tuning.tune(competition, data_dir, trials, given, search, minutes=minutes, storage=storage, name=study,
                         progress=click.echo)
    counts = result.counts
    click.echo(f"study {result.study} ({result.storage}): {counts['complete']} complete, {counts['pruned']} pruned, "
               f"{counts['failed']} failed" + (f", {counts['interrupted']} interrupted and run again" if counts["interrupted"] else ""))
    if result.best_trial is None:
        raise io.CheckFailed(f"study {result.study}: no trial completed; `compete runs {name}` and the trials' "
                             f"lines above say why")
    metric = (runs.read_metrics(Path(result.best_run)).get("metric", competition.metric.name) if result.best_run
              else competition.metric.name)
    click.echo(f"best: trial {result.best_trial}, cv {metric}: {result.best_value:.5f}, run: {result.best_run}")
    click.echo(tuning.set_line(result.best_options))


@main.command()
@COMPETITION
@DATA
@click.option("--run-dir", type=click.Path(path_type=Path), help="Run directory (default runs/COMP/<run-id>/).")
@METRIC
@SCHEDULER
@user_errors
@run_options
def fit(name, data_dir, run_dir, metric, scheduler, given):
    """Train only: cross-validate, write the run directory and the final model.
    Under `torchrun --nproc-per-node N` the training is data-parallel over N processes."""
    from common import runs
    competition = _competition(name, metric)
    _, _, run_dir = runs.fit(competition, data_dir, _options(competition, given), run_dir, scheduler=scheduler)
    made = runs.read_metrics(run_dir)
    if made.get("cv_score") is not None:
        click.echo(f"cv {made.get('metric', competition.metric.name)}: {made['cv_score']:.5f}")
    click.echo(f"run: {run_dir}")


@main.command()
@COMPETITION
@DATA
@click.option("--run-dir", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path), help="A run directory written by `compete fit`.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Submission file to write.")
@SCHEDULER
@user_errors
def predict(name, data_dir, run_dir, out, scheduler):
    """Predict the test set with a trained run and write a validated submission."""
    from common import runs
    path = runs.predict_from(_competition(name), data_dir, run_dir, out, scheduler=scheduler)
    click.echo(f"submission: {path}")


@main.command()
@COMPETITION
@click.argument("run_list", nargs=-1, required=True, metavar="RUN [RUN ...]")
@DATA
@click.option("--out", type=click.Path(path_type=Path), help="Submission file (default submissions/COMP/<blend-run>.csv).")
@METRIC
@user_errors
def blend(name, run_list, data_dir, out, metric):
    """Blend runs (their folders, or names under runs/COMP/) with non-negative weights
    fitted on their out-of-fold predictions for the competition's metric; print each
    run's CV, the blend's nested CV and the submission path."""
    from common import blend as blending
    competition = _competition(name, metric)
    result = blending.blend(competition, list(run_list), data_dir, out=out)
    for run_dir, own, weight in result.members:
        click.echo(f"{run_dir}: cv {result.metric}: {own:.5f}, weight {weight:.3f}" if own is not None else
                   f"{run_dir}: weight {weight:.3f}")
    click.echo(f"cv {result.metric}: {result.cv_score:.5f}")
    click.echo(f"run: {result.run_dir}")
    click.echo(f"submission: {result.submission}")


@main.command("check-split")
@COMPETITION
@DATA
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the table, the features and the plot (default runs/COMP/check-split/).")
@click.option("--weights", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write each training row's weight (how test-like it is, mean 1) as a CSV of id,weight.")
@SEED
@METRIC
@user_errors
def check_split(name, data_dir, out, weights, seed, metric):
    """Adversarial validation: a classifier, out of fold, tells test rows from training
    rows. Prints its AUC (0.5: the test looks like the training data), the features that
    give the test away and the most test-like training rows; writes them as a table and a plot."""
    from common import adversarial, tracking
    competition = _competition(name, metric)
    if weights is not None:
        from common.runs import check_output
        check_output(weights, "--weights")
    out = out or Path(tracking.ROOT) / competition.name / "check-split"
    result = adversarial.check_split(competition, data_dir, out, seed=seed, weights=weights)
    click.echo("features that give the test away (share of the classifier's importance):")
    for row in result.features.head(10).itertuples():
        click.echo(f"  {row.feature:24} {row.importance:.3f}")
    click.echo(f"most test-like training rows (all of them in {result.table}):")
    click.echo(result.rows.head(adversarial.MOST).to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    click.echo(f"plot: {result.plot}")
    if result.weights is not None:
        click.echo(f"weights: {result.weights}")
    click.echo(f"AUC: {result.auc:.4f}")


@main.command()
@COMPETITION
@click.argument("file", type=click.Path(path_type=Path))
@DATA
@METRIC
@user_errors
def validate(name, file, data_dir, metric):
    """Check FILE against the sample submission in --data; exit 1 listing every problem
    (an empty file is one), 2 when FILE or --data cannot be read. FILE may be
    gzip-compressed (FILE.csv.gz) or a zip of one CSV, as the platforms accept it."""
    problems = _competition(name, metric).validate_file(file, data_dir)
    if problems:
        raise InvalidSubmission(file, problems)
    click.echo(f"{described(file)}: valid")


@main.command()
@COMPETITION
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--answers", required=True, type=click.Path(exists=True, path_type=Path),
              help="The truth: a folder (e.g. DATA/answers) or a CSV in submission shape.")
@METRIC
@user_errors
def score(name, file, answers, metric):
    """Score FILE locally with the platform's metric against known answers. FILE may be
    gzip-compressed or a zip of one CSV, as the platforms accept it."""
    scores = _competition(name, metric).score_file(file, answers)
    if described(file) != str(file):  # stdout keeps only the figures
        click.echo(f"{described(file)}: scored the CSV it holds", err=True)
    for name, value in scores.items():
        click.echo(f"{name}: {value:.6f}")


@main.command()
@COMPETITION
@click.argument("file", type=click.Path(path_type=Path))
@DATA
@click.option("-m", "--message", required=True, help="The submission's description on the platform.")
@click.option("--dry-run", is_flag=True, help="Validate and check access and limits, but upload nothing.")
@click.option("--wait", is_flag=True, help="Wait (up to 30 min) for the public score; record it on the run that made FILE.")
@click.option("--profile", help="For code: the runtime to prove it on (`compete runtime profiles`); default: the package's or the competition's.")
@METRIC
@QUIET
@user_errors
def submit(name, file, data_dir, message, dry_run, wait, profile, metric, quiet):
    """Validate FILE against the sample in --data, then upload it to the platform.

    For a code competition FILE is a run directory or a built submission.zip: the bundle
    is run here with no network, its output validated, and the upload steps printed.
    A Kaggle package folder (`compete package ... --profile kaggle-notebook`) is proven in
    the rerun emulation, then its dataset, kernel and submission go up, a line per step.
    With --wait, exit 1 when the platform fails to score it or it is still pending."""
    from common import platforms, runs
    competition = _competition(name, metric)
    receipt = platforms.submit(competition, file, data_dir, message, dry_run=dry_run, quiet=quiet, profile=profile,
                               progress=click.echo)
    for line in receipt.lines:
        click.echo(line)
    if not wait or dry_run:
        return
    status = platforms.wait_for_score(competition, receipt)
    if status.state != "complete":
        verb = "is not scored yet" if status.state == "pending" else "was not scored"
        click.echo(f"error: {file} {verb}: {status.detail}" + (
            f"; see `compete submissions {name}` later" if status.state == "pending" else ""), err=True)
        sys.exit(1)
    # the folder's metric for a PLATFORM:SLUG (its class default is a placeholder)
    shown = competition.metric_for(competition.data_for_format(data_dir))
    click.echo(f"public score ({shown.name}): {status.public_score}")
    run_dir = runs.record_leaderboard(competition, file, status.public_score, receipt.reference, run_dir=receipt.run_dir)
    click.echo(f"recorded as lb_score of run {run_dir}" if run_dir else
               f"no run of {name} made {file}: the score is recorded nowhere")


@main.command()
@COMPETITION
@user_errors
def submissions(name):
    """Your submissions on the platform, newest first, with their scores."""
    from common import platforms
    _echo_table(platforms.submissions(_competition(name)), "no submissions yet")


@main.command()
@COMPETITION
@user_errors
def leaderboard(name):
    """The platform's public leaderboard, best first."""
    from common import platforms
    _echo_table(platforms.leaderboard(_competition(name)), "the leaderboard is empty")


@main.command("runs")
@COMPETITION
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), help="Also draw CV against leaderboard score into this PNG.")
@click.option("--compare", nargs=2, metavar="RUN RUN", help="Two runs (folders, or names under runs/COMP/) side by side: "
                                                            "their scores and the options that differ.")
@user_errors
def runs_command(name, plot, compare):
    """Past runs from MLflow, newest first: run, CV, leaderboard score, options changed
    from the defaults, wall time, and the study or blend that made each."""
    from common import runs
    competition = _competition(name)
    if compare:
        click.echo(runs.compare(competition, *compare).to_string(index=False))
        return
    table = runs.history(competition)
    _echo_table(table.astype(object).where(table.notna(), ""), f"no tracked runs of {name} in {runs.tracking_store()}")
    if plot:
        path, drawn = runs.plot_history(competition, table, plot)
        click.echo(f"plot: {path} ({drawn} run(s) with both scores)")
    link = runs.browse_link(competition) if len(table) else None
    if link:
        click.echo(f"browse: {link}")


def _echo_table(frame, empty: str) -> None:
    click.echo(frame.to_string(index=False) if len(frame) else empty)


@main.command("new")
@click.argument("name")
@click.option("--platform", required=True, type=click.Choice(PLATFORMS),
              help="The platform whose file layout the skeleton's synthetic data follows.")
@user_errors
def new(name, platform):
    """Write a working skeleton competition NAME: a package in competitions/ (synthetic
    data with answers, a baseline model, the options dataclass), a starter notebook, and
    its registry entry. `compete run NAME` and the contract suite pass on it at once."""
    import competitions
    from common import skeleton
    for path in skeleton.write(competitions.REGISTRY, Path(competitions.__file__).parent, name, platform):
        click.echo(path)
    click.echo(f"next: compete data synth {name} --out data/{name} && compete run {name} --data data/{name}")


@main.group()
def host():
    """Host a competition: build one from labelled files, and audit it for leaks."""


@host.command("mask")
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Folder to write the competition into (new or empty).")
@click.option("--top", required=True, type=int, help="Keep the N classes with the most files.")
@click.option("--test-size", default=0.33, show_default=True, help="Share of each class that goes to the test set.")
@click.option("--label-column", default="label", show_default=True, help="Name of the label column in Train.csv.")
@click.option("--hidden-test", type=float, is_flag=False, flag_value=0.5, metavar="[SHARE]",
              help="A code competition's pair: SHARE (default 0.5) of each class's test files form the hidden test, "
                   "kept in answers/hidden/ for `compete runtime test --hidden`.")
@SEED
@QUIET
@user_errors
def host_mask(source, out, top, test_size, label_column, hidden_test, seed, quiet):
    """Build a competition from SOURCE (one sub-folder per class, or a CSV of file,label):
    random ids, per-class split, files re-encoded with nothing of their origin left."""
    from common.masking import mask
    result = mask(source, out, top=top, test_size=test_size, seed=seed, label_column=label_column, quiet=quiet,
                  hidden_test=hidden_test)
    click.echo(f"{len(result.classes)} classes, {result.train} train and {result.test} test files"
               + (f", {result.hidden} hidden test files ({result.out / 'answers' / 'hidden'})" if hidden_test else "")
               + (f", {result.rejected} unreadable file(s) left out (answers/rejected.csv)" if result.rejected else ""))
    click.echo(f"competition: {result.out}")


@host.command("audit")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@SEED
@QUIET
@user_errors
def host_audit(directory, seed, quiet):
    """Try to predict labels and train/test side from ids, order, sizes, durations,
    format, tags and timestamps; exit 1 when any of them leaks."""
    from common.audit import audit
    report = audit(directory, seed=seed, quiet=quiet)
    table = report.table()
    table["accuracy"] = table["accuracy"].map(lambda v: "" if v != v else f"{v:.3f}")
    table["chance"] = table["chance"].map(lambda v: f"{v:.3f}")
    table["p_value"] = table["p_value"].map(lambda v: "" if v != v else f"{v:.1e}")
    click.echo(table.to_string(index=False))
    if report.leaks:
        click.echo(f"{len(report.leaks)} leak(s): " + ", ".join(f"{c.signal} -> {c.target}" for c in report.leaks))
        sys.exit(1)
    click.echo(f"no leak found in {report.files} files")


@main.command()
@COMPETITION
@click.option("--run-dir", type=click.Path(exists=True, file_okay=False, path_type=Path), help="A run directory written by `compete fit`.")
@click.option("--from", "source", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Your own submission folder: main.py at its root (DrivenData: zipped as it is), or one notebook or "
                   "script at its root (Kaggle: the kernel's code; the other files its dataset).")
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="What to write: the bundle (DrivenData, e.g. submission.zip) or the package folder (Kaggle: kernel/, dataset/).")
@click.option("--profile", help="The runtime to build for (`compete runtime profiles`); default: the competition's, "
                                "for a Kaggle competition kaggle-notebook.")
@click.option("--dockerfile", is_flag=True, help="Also write a Docker build context (OUT's name + _runtime/) after the competition's runtime.")
@user_errors
def package(name, run_dir, source, out, profile, dockerfile):
    """Build a code submission for the competition's runtime: from a run (the model and
    the code it needs, with main.py or a notebook calling it) or from your own folder
    (--from). A package that imports what the runtime lacks is refused (exit 1)."""
    from common import packaging
    if (run_dir is None) == (source is None):
        raise io.InputError("give one of --run-dir (a trained run) or --from (your own folder)")
    try:
        built = packaging.package(_competition(name), out, run_dir=run_dir, source=source, profile=profile,
                                  dockerfile=dockerfile)
    except packaging.Refused as refused:
        for problem in refused.problems:
            click.echo(f"environment: {problem}", err=True)
        raise
    for note in built.notes:
        click.echo(f"note: {note}", err=True)
    for path in built.written:
        click.echo(path)


@main.group()
def runtime():
    """Run a code submission locally the way the platform's hidden-test runtime would."""


@runtime.command("profiles")
@user_errors
def runtime_profiles():
    """The hidden-test runtimes compete can emulate: name, Python, layout, source."""
    from common import runtimes
    width = max(map(len, runtimes.names())) + 1
    for name in runtimes.names():
        profile = runtimes.profile(name)
        data = " and ".join((profile.data, *profile.data_aliases))
        click.echo(f"{name:{width}} Python {profile.python:8} root {profile.root:16} data {data} (read-only)")
        click.echo(f"{'':{width}} {profile.description}; {len(profile.packages)} packages")
        click.echo(f"{'':{width}} from {profile.source}")


@runtime.command("test")
@click.argument("submission", type=click.Path(path_type=Path))
@DATA
@click.option("--hidden", type=click.Path(path_type=Path), help="A folder of hidden test files (and their sample) shown over --data's, as the platform's rerun swaps them in.")
@click.option("--competition", "competition_name", metavar="COMP", help="The competition whose format the output must have (for a submission not built by compete).")
@click.option("--profile", help="The runtime to emulate (`compete runtime profiles`); default: the competition's.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Keep the output the submission wrote here.")
@click.option("--time-limit", type=float, help="Seconds before the run is killed; default: the profile's.")
@click.option("--memory-limit", type=float, help="Resident memory limit in GB, enforced like docker --memory (a memory cgroup).")
@click.option("--smoke", type=int, metavar="N", help="Run on the first N test items only, as a smoke test does.")
@click.option("--keep", is_flag=True, help="Keep the scratch folder (unpacked submission, outputs) and print where it is.")
@click.option("--skip-env-check", is_flag=True, help="Run even when the submission fails the profile's environment check.")
@click.option("--unisolated", is_flag=True, hidden=True, help="Where no sandbox can be built: run WITHOUT isolation or the runtime's paths.")
@user_errors
def runtime_test(submission, data_dir, hidden, competition_name, profile, out, time_limit, memory_limit, smoke, keep,
                 skip_env_check, unisolated):
    """Run SUBMISSION (a DrivenData bundle, or a Kaggle package folder) as the platform's
    hidden-test runtime would: the profile's paths, only the files its container holds,
    read-only, no network, the time and memory limits; validate the output it writes.
    Prints wall time, CPU seconds and peak memory; exit 1 with the reason if it fails."""
    from common.runtimes import runner
    from competitions import REGISTRY
    competition = runner.resolve(REGISTRY, submission, data_dir, competition_name)
    result = runner.run_test(submission, competition, data_dir, hidden=hidden, profile=profile, out=out,
                             time_limit=time_limit, memory_limit=memory_limit, smoke=smoke, keep=keep,
                             skip_env_check=skip_env_check, unisolated=unisolated)
    if not result.isolated:
        click.echo("warning: ran WITHOUT network isolation, the runtime's paths or a read-only data mount (--unisolated)", err=True)
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    for problem in result.problems:
        click.echo(f"environment: {problem}", err=True)
    click.echo(f"log: {result.log}")
    if result.resources:
        r = result.resources
        peak = f"{r['peak_memory_mb']:.0f} MB" if r["peak_memory_mb"] is not None else "not measured"
        gpu = f"{r['gpu_memory_mb']:.0f} MB" if r["gpu_memory_mb"] is not None else "no GPU"
        counts = {name: text.split(" (")[0] for name, text in r.get("explained", {}).items()}   # resources.json says more
        written = ", ".join(f"{folder} {size:.0f} MB" for folder, size in r.get("disk_written_mb", {}).items() if size is not None)
        click.echo(f"resources: wall {r['wall_seconds']:.1f} s, CPU {r['cpu_seconds']:.1f} s ({counts.get('cpu_seconds', 'CPU')}), "
                   f"peak memory {peak} ({counts.get('peak_memory_mb', 'peak')}), peak resident {r['peak_rss_mb']:.0f} MB "
                   f"({counts.get('peak_rss_mb', 'resident')}), processes {r.get('peak_processes') or 'not counted'} at most, "
                   f"written {written or 'not measured'}, GPU {gpu}; limits: memory {r['memory_limit']}, processes "
                   f"{r.get('process_limit', 'none')}, disk {r.get('disk_limit', 'none')} ({result.results / 'resources.json'})")
    if result.workdir is not None:
        click.echo(f"kept: {result.workdir}")
    if not result.ok:
        click.echo(f"FAILED: {result.failure + ': ' if result.failure else ''}{result.reason}", err=True)
        sys.exit(1)
    click.echo(f"passed on {result.profile} in {result.seconds:.1f} s: {result.submission} is valid")


@main.group()
def cache():
    """The feature and shard caches ($COMPETE_CACHE, default ~/.cache/compete) and temp folders."""


@cache.command("clear")
@user_errors
def cache_clear():
    """Remove the cache and compete's temp folders; print what went and the space freed."""
    removed = io.clear_cache()
    for path, size in removed:
        click.echo(f"removed {path} ({size / 1e6:.1f} MB)")
    click.echo(f"{len(removed)} item(s), {sum(size for _, size in removed) / 1e6:.1f} MB freed")


if __name__ == "__main__":
    main()
