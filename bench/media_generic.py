"""The generic media paths (`compete run PLATFORM:SLUG`) against a named baseline fitted
in the same script, on corpora `compete data synth` writes in the platforms' real
layouts, with the test's answers kept aside; both contenders are scored on the same test
with the competition's metric.

Text: the default run (the free-text layout recognised, TF-IDF word + character n-grams,
logistic regression and NB-SVM blended on out-of-fold predictions, the decision fitted to
the metric) against plain TF-IDF (word 1-2 grams, sublinear tf) + logistic regression
(scikit-learn's defaults, the text column only, labels at 0.5) on
  - nlp-getting-started's layout, F1, 7,613 train rows (the real file's size);
  - spooky-author-identification's layout, multi-class log loss, 6,000 train rows;
  - jigsaw-toxic-comment-classification-challenge's layout (six 0/1 label columns), mean
    column-wise ROC AUC, 8,000 train rows (the baseline: one regression per label).

    ratio = default error / baseline error   (< 1: the default run is better; for F1 the
            error is 1 - F1 or 1 - AUC)

Images: the default run (the layout recognised, the small CNN trained from scratch on
shards at a size chosen from the data within its 10-minute budget, the decision fitted on
the held-out files) against a logistic regression on the pixels downsampled to 16x16 RGB
(standardised, scikit-learn's defaults; labels at 0.5 or the most probable class) on
  - aerial-cactus-identification's layout, ROC AUC, 32x32 JPEGs;
  - dog-breed-identification's layout, multi-class log loss, JPEGs of varying sizes;
  - planet-understanding-the-amazon-from-space's layout, F1 over the tags (micro);
  - plant-seedlings-classification's layout (class folders), accuracy.
`images-small`: a quarter of the files and a 2-minute budget, for a loaded machine.

Audio: the default run (the labels-CSV layout recognised, cached log-mels, the small CNN
on crops blended with the linear model on pooled statistics, calibrated on the held-out
clips) against pooled log-mel statistics (mean and std of each of 64 librosa mel bands,
16 kHz) + logistic regression (standardised, scikit-learn's defaults; an undecodable clip
gets the training prior) on
  - Zindi's Fowl Escapades layout as birdcall's synth writes it at full scale (Train.csv
    `ID,common_name` beside Train/ and Test/ clips named by ID without the extension, the
    sample a probability column per species; 1,857 train and 911 test clips of 40 species
    in unequal shares, 2-30 s, six sample rates, some stereo, MP3 with WAV inside some,
    a few truncated or not audio at all), Zindi's multi-class log loss (rows normalised,
    clipped at 1e-15): ratio = default log loss / baseline log loss.

Measured 2026-12-07 (2 cores shared with four other sessions: load average 1.0 at the
start, 4-9 during the runs, so the wall times are inflated; default seeds):
  layout                       metric    default  baseline  ratio  default wall
  text nlp-getting-started     F1        0.8340   0.8021    0.839  253 s
  text spooky-author           log loss  0.2194   0.4859    0.451  279 s
  text jigsaw (6 labels)       mean AUC  0.9860   0.9616    0.365  497 s
  images-small (a quarter of the files, 2-minute budget; load 4-11):
  cactus (1,000 files)         ROC AUC   1.0000   0.8123    0.000  160 s  (test answers carry no label noise)
  dog breeds (750)             log loss  0.1007   2.2692    0.044  222 s
  planet tags (750)            F1 micro  0.9658   0.7684    0.148  200 s
  plant seedlings (600)        accuracy  0.7500   0.4050    0.420  142 s
  images, full (10-minute budget; load 6-11, the audio run beside it):
  cactus (4,000 files)         ROC AUC   0.9996   0.8601    0.003  759 s
  dog breeds (3,000)           log loss  0.0616   1.5248    0.040  600 s
  planet tags (3,000)          F1 micro  0.9898   0.7918    0.049  458 s
  plant seedlings (2,400)      accuracy  0.9487   0.4238    0.089  810 s
  audio (seed 2028; load 4-10):
  Fowl Escapades (1,857 clips) log loss  0.3990   0.9889    0.403  664 s  (log-mels cached by a first
      attempt that ended on a MixUp batch of one, fixed in common/sound.py: add ~2 min, the
      baseline's decoding and features of all 2,768 clips took 127 s; 9 epochs fitted the budget;
      held-out log loss: CNN 0.571, pooled-statistics model 0.361, their blend 0.320)

`--backbone PATH` adds, after each text case's default run, a run with the transformer
family (`--set backbone=PATH`: a local Hugging Face model folder, or a name in the cache);
`--backbone tiny` builds a 2-layer BERT of hidden size 64 (256 positions) from random weights with a
WordLevel tokenizer of the case's own words (tests/test_text_transformer.py's builder)
and fine-tunes it at lr 3e-3: no pretrained model can be fetched here, so that run
measures the plumbing and the time, not what a pretrained transformer adds.

Target: ratio clearly < 1 on each layout, each default run within 15 min on 2 cores.
The seeds below were never used while building the models (tests use 3, 5, 11, 12).
Usage: python bench/media_generic.py [text images images-small audio ...] [--backbone PATH|tiny]
       (default: text, images, audio)
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _command import ROOT, compete

sys.path.insert(0, str(ROOT))

from common import metrics
from competitions.tabular.synth import make_text

TEXT_CASES = (  # (slug, metric, train rows, seed, text column, target column(s))
    ("nlp-getting-started", "f1", 7_613, 2024, "text", "target"),
    ("spooky-author-identification", "logloss", 6_000, 2025, "text", "author"),
    ("jigsaw-toxic-comment-classification-challenge", "auc", 8_000, 2026, "comment_text",
     "toxic,severe_toxic,obscene,threat,insult,identity_hate"),
)


def text_baseline(data: Path, metric: str, text: str, target: str) -> pd.DataFrame:
    """TF-IDF (word 1-2 grams) + logistic regression on the text column: the sample's shape."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    train = pd.read_csv(data / "train.csv", dtype=str, keep_default_na=False)
    test = pd.read_csv(data / "test.csv", dtype=str, keep_default_na=False)
    sample = pd.read_csv(data / "sample_submission.csv", dtype=str)
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2)
    features, test_features = vectorizer.fit_transform(train[text]), vectorizer.transform(test[text])
    frame = pd.DataFrame({sample.columns[0]: test[sample.columns[0]]})
    if "," in target:  # 0/1 label columns: one regression per label
        for column in target.split(","):
            model = LogisticRegression(max_iter=1000).fit(features, train[column].astype(int))
            frame[column] = model.predict_proba(test_features)[:, 1]
        return frame
    model = LogisticRegression(max_iter=1000).fit(features, train[target])
    probabilities = model.predict_proba(test_features)
    if len(sample.columns) > 2:  # one probability column per class
        for column in sample.columns[1:]:
            frame[column] = probabilities[:, list(model.classes_).index(column)]
    else:
        frame[sample.columns[1]] = model.classes_[probabilities.argmax(axis=1)]
    return frame


def text_score(metric: str, submission: pd.DataFrame, answers: pd.DataFrame) -> float:
    id_column = submission.columns[0]
    truth = answers.set_index(answers[id_column].astype(str)).loc[submission[id_column].astype(str)]
    columns = list(submission.columns[1:])
    if metric == "f1":
        return metrics.f1(truth[columns[0]].astype(int).to_numpy(), submission[columns[0]].astype(int).to_numpy())
    if metric == "auc":
        return metrics.roc_auc(truth[columns].to_numpy(dtype=int), submission[columns].to_numpy(dtype=float))
    y_true = truth[columns].to_numpy().argmax(axis=1)
    return metrics.multiclass_log_loss(y_true, submission[columns].to_numpy(dtype=float))


def tiny_backbone(folder: Path, data: Path) -> Path:
    """A from-scratch 2-layer BERT (hidden size 64) with a tokenizer of the corpus's words."""
    from tests.test_text_transformer import tiny_bert

    frames = [pd.read_csv(data / name, dtype=str, keep_default_na=False) for name in ("train.csv", "test.csv")]
    texts = [cell for frame in frames for column in frame.columns if "text" in column for cell in frame[column]]
    return tiny_bert(folder, texts, hidden_size=64, positions=256)


def text(work: Path, backbone: str | None = None) -> list[str]:
    lines = []
    for slug, metric, rows, seed, text_column, target in TEXT_CASES:
        data = make_text(work / slug, slug, rows, seed)
        answers = pd.read_csv(data / "answers" / "solution.csv", dtype={"id": str})
        started = time.perf_counter()
        baseline = text_baseline(data, metric, text_column, target)
        baseline_seconds = time.perf_counter() - started
        theirs = text_score(metric, baseline, answers)
        error = (lambda s: 1 - s) if metric in ("f1", "auc") else (lambda s: s)
        runs = [("default", ())]
        if backbone:
            folder = tiny_backbone(work / f"tiny-{slug}", data) if backbone == "tiny" else backbone
            settings = ("--set", f"backbone={folder}", *(("--set", "lr=3e-3") if backbone == "tiny" else ()))
            runs.append((f"+ transformer ({'tiny, from scratch' if backbone == 'tiny' else backbone})", settings))
        for label, settings in runs:
            out = work / f"{slug}-{len(settings)}.csv"
            seconds, printed = compete("run", f"kaggle:{slug}", "--data", data, "--metric", metric, "--out", out,
                                       "--run-dir", work / f"run-{slug}-{len(settings)}", "--quiet", *settings)
            ours = text_score(metric, pd.read_csv(out), answers)
            cv = next((line for line in printed.splitlines() if line.startswith("cv ")), "cv ?")
            lines.append(f"text {slug} ({metric}, {rows} train rows, seed {seed}): {label} {ours:.4f} ({cv}) in "
                         f"{seconds:.0f} s; baseline TF-IDF+LR {theirs:.4f} in {baseline_seconds:.1f} s; "
                         f"ratio {error(ours) / error(theirs):.3f}")
            print(lines[-1], flush=True)
    return lines


IMAGE_CASES = (  # (slug, metric, train files, seed)
    ("aerial-cactus-identification", "auc", 4_000, 2024),
    ("dog-breed-identification", "logloss", 3_000, 2025),
    ("planet-understanding-the-amazon-from-space", "f1", 3_000, 2026),
    ("plant-seedlings-classification", "accuracy", 2_400, 2027),
)
PIXELS = 16


def pixel_baseline(data: Path, metric: str) -> pd.DataFrame:
    """Logistic regression on PIXELS x PIXELS RGB pixels, standardised: the sample's shape."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from common import images
    from competitions.tabular import media as MD

    layout = MD.recognise(data)
    loaded = MD.load(data, layout, None)

    def pixels(files):
        return np.stack([images.read_image(path, PIXELS).reshape(-1) for path in files]).astype(np.float32)

    X, test = pixels(layout.train_files), pixels(layout.test.files)
    frame = pd.DataFrame({layout.id_column: loaded.sample[layout.id_column]})

    def fitted(y):
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(X, y)

    target = loaded.target
    if loaded.tags:
        chosen = np.column_stack([fitted(loaded.y[:, j]).predict_proba(test)[:, 1] >= 0.5 for j in range(loaded.y.shape[1])])
        frame[target.sample_columns[0]] = [" ".join(t for t, on in zip(target.columns, row) if on) for row in chosen]
        return frame
    probabilities = fitted(loaded.y).predict_proba(test)
    if metric in ("accuracy", "f1"):
        frame[target.sample_columns[0]] = np.asarray(target.classes, dtype=object)[probabilities.argmax(axis=1)]
    elif target.class_columns:
        for i, column in enumerate(target.class_columns):
            frame[column] = probabilities[:, i]
    else:
        frame[target.sample_columns[0]] = probabilities[:, 1]
    return frame


def image_score(metric: str, submission: pd.DataFrame, answers: pd.DataFrame) -> float:
    id_column = submission.columns[0]
    truth = answers.astype({id_column: str}).set_index(id_column).loc[submission[id_column].astype(str)]
    columns = list(submission.columns[1:])
    if metric == "auc":
        return metrics.roc_auc(truth[columns[0]].to_numpy(dtype=int), submission[columns[0]].to_numpy(dtype=float))
    if metric == "logloss":
        return metrics.multiclass_log_loss(truth[columns].to_numpy().argmax(axis=1), submission[columns].to_numpy(dtype=float))
    if metric == "f1":   # tags: F1 over every (image, tag) pair
        vocabulary = sorted({t for cell in truth[columns[0]] for t in str(cell).split()})
        def matrix(cells):
            return np.array([[t in str(cell).split() for t in vocabulary] for cell in cells], dtype=int)
        return metrics.f1(matrix(truth[columns[0]]), matrix(submission[columns[0]].fillna("")))
    return float((truth[columns[0]].astype(str).to_numpy() == submission[columns[0]].astype(str).to_numpy()).mean())


def images(work: Path, share: float = 1.0, minutes: float | None = None) -> list[str]:
    from competitions.tabular import media_synth

    lines = []
    for slug, metric, rows, seed in IMAGE_CASES:
        rows = int(rows * share)
        data = media_synth.make(work / slug, slug, rows=rows, seed=seed)
        answers = pd.read_csv(data / "answers" / "solution.csv", dtype=str, keep_default_na=False)
        started = time.perf_counter()
        baseline = pixel_baseline(data, metric)
        baseline_seconds = time.perf_counter() - started
        out = work / f"{slug}.csv"
        budget = ("--set", f"minutes={minutes}") if minutes else ()
        seconds, printed = compete("run", f"kaggle:{slug}", "--data", data, "--metric", metric, "--out", out,
                                   "--run-dir", work / f"run-{slug}", "--quiet", *budget)
        submitted = pd.read_csv(out, dtype=str, keep_default_na=False)
        ours, theirs = image_score(metric, submitted, answers), image_score(metric, baseline, answers)
        error = (lambda s: 1 - s) if metric in ("f1", "auc", "accuracy") else (lambda s: s)
        ratio = error(ours) / error(theirs)
        cv = next((line for line in printed.splitlines() if line.startswith("cv ")), "cv ?")
        lines.append(f"images {slug} ({metric}, {rows} train files, seed {seed}{f', {minutes}-minute budget' if minutes else ''}): "
                     f"default {ours:.4f} ({cv}) in {seconds:.0f} s; baseline pixel LR {theirs:.4f} in "
                     f"{baseline_seconds:.1f} s; ratio {ratio:.3f}")
        print(lines[-1], flush=True)
    return lines


AUDIO_CASES = (  # (platform:slug, metric, seed): the data birdcall's synth writes at full scale
    ("zindi:fowl-escapades", "logloss", 2028),
)
MEL = dict(sr=16000, n_fft=1024, hop_length=320, n_mels=64, fmin=50.0, fmax=8000.0)


def pooled_mel(path: Path) -> np.ndarray | None:
    """Mean and std of each log-mel band over the clip (librosa), or None when the clip
    does not decode (common/spectrograms.py's decoder, which reads WAV inside .mp3)."""
    import librosa

    from common import spectrograms
    try:
        samples = spectrograms.decode(path, MEL["sr"])
    except ValueError:
        return None
    if len(samples) < MEL["n_fft"]:
        return None
    power = librosa.feature.melspectrogram(y=samples, **MEL)
    mel = librosa.power_to_db(power, ref=np.max, top_db=80.0)
    return np.concatenate([mel.mean(axis=1), mel.std(axis=1)]).astype(np.float32)


def mel_baseline(data: Path) -> pd.DataFrame:
    """Pooled log-mel statistics + logistic regression (standardised, scikit-learn's
    defaults); a clip that does not decode gets the training prior: the sample's shape."""
    from joblib import Parallel, delayed
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from competitions.tabular import media as MD

    layout = MD.recognise(data)
    loaded = MD.load(data, layout, None)

    def features(files):
        rows = Parallel(n_jobs=2)(delayed(pooled_mel)(path) for path in files)
        readable = np.array([row is not None for row in rows])
        width = next(len(row) for row in rows if row is not None)
        return np.stack([row if row is not None else np.zeros(width, np.float32) for row in rows]), readable

    (X, usable), (test, readable) = features(layout.train_files), features(layout.test.files)
    classes = len(loaded.target.classes)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000)).fit(X[usable], loaded.y[usable])
    probabilities = np.tile(np.bincount(loaded.y[usable], minlength=classes) / usable.sum(), (len(test), 1))
    probabilities[readable] = 0.0
    probabilities[np.ix_(readable, model.classes_)] = model.predict_proba(test[readable])
    frame = pd.DataFrame({layout.id_column: loaded.sample[layout.id_column]})
    for i, column in enumerate(loaded.target.class_columns):
        frame[column] = probabilities[:, i]
    return frame


def audio(work: Path) -> list[str]:
    from competitions.birdcall import synth as bird_synth

    lines = []
    for name, metric, seed in AUDIO_CASES:
        data = work / name.replace(":", "-")
        bird_synth.synth(data, seed=seed, scale="full")
        answers = pd.read_csv(data / "answers" / "solution.csv", dtype=str, keep_default_na=False)
        out = work / f"{data.name}.csv"
        seconds, printed = compete("run", name, "--data", data, "--metric", metric, "--out", out,
                                   "--run-dir", work / f"run-{data.name}", "--quiet")
        started = time.perf_counter()
        baseline = mel_baseline(data)
        baseline_seconds = time.perf_counter() - started
        submitted = pd.read_csv(out, dtype=str, keep_default_na=False)
        ours, theirs = image_score(metric, submitted, answers), image_score(metric, baseline, answers)
        ratio = ours / theirs
        cv = next((line for line in printed.splitlines() if line.startswith("cv ")), "cv ?")
        clips = len(pd.read_csv(data / "Train.csv"))
        lines.append(f"audio {name} ({metric}, {clips} train clips, seed {seed}): default {ours:.4f} ({cv}) in "
                     f"{seconds:.0f} s; baseline pooled log-mel LR {theirs:.4f} in {baseline_seconds:.1f} s; "
                     f"ratio {ratio:.3f}")
        print(lines[-1], flush=True)
    return lines


MEDIA = {"text": text, "images": images, "images-small": lambda work: images(work, share=0.25, minutes=2.0),
         "audio": audio}
DEFAULT = ("text", "images", "audio")


def main(names: list[str]) -> None:
    backbone = None
    if "--backbone" in names:
        at = names.index("--backbone")
        if at + 1 >= len(names):
            sys.exit("--backbone: give a Hugging Face model folder, a cached name, or tiny")
        backbone = names[at + 1]
        names = names[:at] + names[at + 2:]
        MEDIA["text"] = lambda work: text(work, backbone)
    names = names or list(DEFAULT)
    unknown = [name for name in names if name not in MEDIA]
    if unknown:
        sys.exit(f"unknown medium {unknown[0]!r}; known: {', '.join(MEDIA)}")
    print(subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip(), flush=True)
    with tempfile.TemporaryDirectory(prefix="media-generic-") as folder:
        for name in names:
            MEDIA[name](Path(folder))
    print(subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip(), flush=True)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main(sys.argv[1:])
