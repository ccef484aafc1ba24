"""A small tabular competition with every column kind, as a platform ships one: train.csv,
test.csv and sample_submission.csv, and the test's answers in answers/solution.csv (in
submission shape).

The target depends on a number, a category, a date's month, words of a free-text column
and a number with missing cells, so a pipeline that reads any kind wrongly scores worse.
String ids in shuffled order, so nothing about the answer is in the id or the row order.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from common import io

CITIES = {"Lagos": 1.0, "Nairobi": -0.5, "Accra": 0.3, "Kigali": -1.0, "Dakar": 0.6}
WORDS = {"good": 1, "great": 1, "nice": 1, "fine": 1, "bad": -1, "awful": -1, "poor": -1, "slow": -1,
         "the": 0, "and": 0, "service": 0, "food": 0}
CLASSES = ("high", "low", "mid", "top")  # the sample's column order: sorted, as platforms list them
ROWS = {"small": 600, "full": 20_000}


def make(out: Path, task: str = "binary", rows: int = 600, seed: int = 0) -> Path:
    """Write a competition for `task` ("regression", "binary", "multiclass") into `out`:
    `rows` train rows and half as many test rows."""
    if task not in ("regression", "binary", "multiclass"):
        raise io.InputError(f"synthetic task {task!r}; known: regression, binary, multiclass")
    out = Path(out)
    rng = np.random.default_rng(seed)
    total = rows + rows // 2
    amount = rng.normal(size=total)
    level = rng.uniform(0, 10, total)
    city = rng.choice(list(CITIES), total)
    dates = pd.Timestamp("2021-01-01") + pd.to_timedelta(rng.integers(0, 730, total), unit="D")
    vocabulary = np.array(list(WORDS))
    reviews = [" ".join(rng.choice(vocabulary, rng.integers(5, 10))) for _ in range(total)]
    tone = np.array([sum(WORDS[w] for w in review.split()) for review in reviews], dtype=float)
    signal = (amount + 0.25 * level + pd.Series(city).map(CITIES).to_numpy() + 0.4 * tone
              + 0.8 * np.sin(2 * np.pi * dates.month.to_numpy() / 12))
    frame = pd.DataFrame({
        "row_id": [f"R{number:06d}" for number in rng.permutation(total)],
        "amount": amount.round(4), "level": level.round(3), "city": city,
        "visited": dates.strftime("%Y-%m-%d"), "review": reviews,
    })
    frame.loc[rng.random(total) < 0.05, "amount"] = np.nan  # missing cells, as real files have
    noise = rng.normal(0, 1, total)
    if task == "regression":
        target = {"price": np.round(np.exp(3 + (signal + 0.3 * noise) / 4), 2)}
        sample_values = {"price": 0.0}
    elif task == "binary":
        target = {"outcome": (signal + noise > 2.5).astype(int)}
        sample_values = {"outcome": 0}
    else:
        levels = np.digitize(signal + 0.7 * noise, [1.0, 2.5, 4.0])
        target = {"grade": np.array(["low", "mid", "high", "top"])[levels]}
        sample_values = {name: 0.25 for name in CLASSES}
    train = frame.iloc[:rows].assign(**{k: v[:rows] for k, v in target.items()})
    test = frame.iloc[rows:].reset_index(drop=True)
    io.write_csv(train, out / "train.csv")
    io.write_csv(test, out / "test.csv")
    io.write_csv(pd.DataFrame({"row_id": test["row_id"], **sample_values}), out / "sample_submission.csv")
    answers = pd.DataFrame({"row_id": test["row_id"]})
    if task == "multiclass":
        for name in CLASSES:
            answers[name] = (target["grade"][rows:] == name).astype(int)
    else:
        for name, values in target.items():
            answers[name] = values[rows:]
    io.write_csv(answers, out / "answers" / "solution.csv")
    return out


def synth(out: Path, seed: int = 0, scale: str = "small") -> None:
    make(out, "binary", ROWS[scale], seed)


# --- Free-text competitions, in the layouts Kaggle ships -------------------------------
# nlp-getting-started (F1): train.csv id,keyword,location,text,target (7,613 rows, 43%
# positive; ids ascending in keyword order, keywords URL-encoded, ~0.8% of keywords and
# ~33% of locations empty, tweets <= ~157 characters, ~15 words, links as http://t.co/...),
# test.csv id,keyword,location,text, sample_submission.csv id,target (0).
# spooky-author-identification (multi-class log loss): train.csv "id","text","author"
# (19,579 rows, ids like id26305, EAP 40% / HPL 29% / MWS 31%, sentences of ~27 words with
# a long tail), test.csv "id","text", sample_submission.csv id,EAP,HPL,MWS holding the
# class shares. jigsaw-toxic-comment-classification-challenge (mean column-wise AUC):
# train.csv id,comment_text and six 0/1 columns, test.csv id,comment_text, the sample one
# 0.5 column per label. Shapes as the competitions' data pages describe them, and as public
# notebooks in the code index read them (find_string "nlp-getting-started/train.csv":
# "test shape - 3263 x 3, train shape - 7613 x 4" with id as index, "space is shown as
# %20", links matched by https?://t.co/[A-Za-z0-9]+; "spooky-author-identification/
# train.csv": columns id, text, author; the sample's id, EAP, HPL, MWS). The index gave
# those excerpts without their repositories, so no repository or commit is named here.
TEXT_LAYOUTS = ("nlp-getting-started", "spooky-author-identification", "jigsaw-toxic-comment-classification-challenge")
# Train rows: "small" for tests and a quick look, "full" as many as the real train.csv
# (jigsaw's 159,571 capped: its shape, not its size, is what a pipeline must read).
TEXT_ROWS = {"small": dict.fromkeys(TEXT_LAYOUTS, 1_500),
             "full": dict(zip(TEXT_LAYOUTS, (7_613, 19_579, 40_000)))}
SYLLABLES = ("ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "be", "da", "fe", "gi", "ho", "ju", "ze", "po",
             "qua", "str", "ith", "orn", "el", "an", "ur", "ex")
SUFFIXES = ("eth", "ous", "ful", "ing", "ness", "ish", "ward", "ly")


class Corpus:
    """A Zipf vocabulary of made-up words (frequency ~ 1/rank^1.05, as natural language)
    and, per class, what it says differently: its own words, two-word phrases of common
    words (informative as bigrams only), and a suffix it adds to words (informative as
    character n-grams only). A document mixes the background with its class's habits at a
    strength drawn per document, so some rows are easy and some are not."""

    def __init__(self, rng: np.random.Generator, classes: int, vocabulary: int = 8000):
        words = set()
        while len(words) < vocabulary:
            words.add("".join(rng.choice(SYLLABLES, rng.integers(1, 4))))
        self.words = np.array(sorted(words, key=lambda w: (len(w), w)))
        rng.shuffle(self.words)
        self.background = 1.0 / np.arange(1, vocabulary + 1) ** 1.05
        self.cumulative = np.cumsum(self.background / self.background.sum())
        self.own = [rng.choice(np.arange(40, 4000), 120, replace=False) for _ in range(classes)]
        common = np.arange(5, 200)
        self.phrases = [[tuple(rng.choice(common, 2, replace=False)) for _ in range(30)] for _ in range(classes)]
        self.suffix = [SUFFIXES[c % len(SUFFIXES)] for c in range(classes)]
        self.suffixed = [rng.choice(np.arange(20, 3000), 300, replace=False) for _ in range(classes)]

    def document(self, rng: np.random.Generator, label: int, length: int, strength: float,
                 cues: tuple[str, ...] = ("words", "phrases", "suffix")) -> list[str]:
        tokens = []
        while len(tokens) < length:
            if rng.random() >= strength:
                index = min(int(np.searchsorted(self.cumulative, rng.random())), len(self.words) - 1)
                tokens.append(self.words[index])
                continue
            cue = cues[rng.integers(len(cues))]
            if cue == "words":
                own = self.own[label]
                tokens.append(self.words[own[min(int(rng.zipf(1.3)) - 1, len(own) - 1)]])
            elif cue == "phrases":
                tokens.extend(self.words[i] for i in self.phrases[label][rng.integers(30)])
            else:
                tokens.append(self.words[rng.choice(self.suffixed[label])] + self.suffix[label])
        return tokens[:length]


def _tweets(out: Path, rows: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    total = rows + rows * 3263 // 7613
    corpus = Corpus(rng, 2)
    labels = (rng.random(total) < 0.43).astype(int)
    keywords = [("%20".join(rng.choice(corpus.words[:600], rng.integers(1, 3)))) for _ in range(221)]
    positive_rate = rng.beta(1.0, 1.3, len(keywords))
    weights = {1: positive_rate / positive_rate.sum(), 0: (1 - positive_rate) / (1 - positive_rate).sum()}
    places = ["".join(rng.choice(SYLLABLES, 3)).title() + rng.choice(["", ", USA", ", UK", " City", ", Nigeria"])
              for _ in range(300)]
    place_weights = 1.0 / np.arange(1, 301) ** 0.9
    records = []
    for label in labels:
        keyword = keywords[rng.choice(len(keywords), p=weights[label])] if rng.random() > 0.008 else ""
        tokens = corpus.document(rng, label, int(np.clip(rng.normal(15, 5), 2, 31)), rng.beta(2, 5) * 0.9)
        if keyword and rng.random() < 0.7:
            tokens.insert(rng.integers(len(tokens) + 1), keyword.replace("%20", " "))
        if rng.random() < 0.25:
            tokens.insert(0, "@" + rng.choice(corpus.words[:2000]) + str(rng.integers(0, 99)))
        if rng.random() < 0.2:
            tokens.append("#" + rng.choice(corpus.words[:1500]))
        if rng.random() < (0.66 if label else 0.45):
            tokens.append("http://t.co/" + "".join(rng.choice(list("abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ0123456789"), 10)))
        text = " ".join(tokens)[:157]
        location = places[rng.choice(300, p=place_weights / place_weights.sum())] if rng.random() > 0.33 else ""
        records.append((keyword, location, text[0].upper() + text[1:]))
    frame = pd.DataFrame(records, columns=["keyword", "location", "text"])
    # Some labels disagree with the text, as the real file's do (train and test alike).
    frame["target"] = np.where(rng.random(total) < 0.08, 1 - labels, labels)
    frame = frame.iloc[np.lexsort((rng.random(total), frame["keyword"].to_numpy()))].reset_index(drop=True)
    frame["id"] = np.cumsum(rng.integers(1, 4, total))
    is_test = np.zeros(total, dtype=bool)
    is_test[rng.choice(total, total - rows, replace=False)] = True
    train = frame.loc[~is_test, ["id", "keyword", "location", "text", "target"]]
    test = frame.loc[is_test, ["id", "keyword", "location", "text"]]
    io.write_csv(train, out / "train.csv")
    io.write_csv(test, out / "test.csv")
    io.write_csv(pd.DataFrame({"id": test["id"], "target": 0}), out / "sample_submission.csv")
    io.write_csv(pd.DataFrame({"id": test["id"], "target": frame.loc[is_test, "target"]}), out / "answers" / "solution.csv")


def _sentences(rng: np.random.Generator, tokens: list[str], semicolons: float) -> str:
    text = []
    for i, token in enumerate(tokens):
        mark = ""
        if i < len(tokens) - 1:
            mark = "," if rng.random() < 0.09 else (";" if rng.random() < semicolons else "")
        text.append(token + mark)
    sentence = " ".join(text)
    return sentence[0].upper() + sentence[1:] + rng.choice([".", ".", ".", "?", "!"])


def _authors(out: Path, rows: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    authors, shares = ["EAP", "HPL", "MWS"], np.array([7900, 5635, 6044]) / 19579
    total = rows + rows * 8392 // 19579
    corpus = Corpus(rng, 3)
    labels = rng.choice(3, total, p=shares)
    semicolons = (0.01, 0.004, 0.02)
    lengths = np.clip(np.round(rng.lognormal(3.1, 0.6, total)), 2, 400).astype(int)
    texts = [_sentences(rng, corpus.document(rng, label, length, rng.beta(2, 6) * 0.6), semicolons[label])
             for label, length in zip(labels, lengths)]
    ids = [f"id{number:05d}" for number in rng.choice(100_000, total, replace=False)]
    frame = pd.DataFrame({"id": ids, "text": texts, "author": np.array(authors)[labels]})
    train, test = frame.iloc[:rows], frame.iloc[rows:]
    io.write_csv(train, out / "train.csv", quoting=1)
    io.write_csv(test[["id", "text"]], out / "test.csv", quoting=1)
    io.write_csv(pd.DataFrame({"id": test["id"], **{a: round(s, 12) for a, s in zip(authors, shares)}}),
                 out / "sample_submission.csv")
    answers = pd.DataFrame({"id": test["id"], **{a: (test["author"] == a).astype(int) for a in authors}})
    io.write_csv(answers, out / "answers" / "solution.csv")


def _comments(out: Path, rows: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels = ["toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate"]
    rates = np.array([0.096, 0.010, 0.053, 0.003, 0.049, 0.009])
    total = rows + rows // 2
    corpus = Corpus(rng, len(labels) + 1)
    # Labels nest as in the real file: every other label almost always comes with toxic.
    toxic = rng.random(total) < rates[0]
    matrix = np.zeros((total, len(labels)), dtype=int)
    matrix[:, 0] = toxic
    for j in range(1, len(labels)):
        matrix[:, j] = toxic & (rng.random(total) < max(rates[j] / rates[0], 0.15))
    texts = []
    for row in matrix:
        length = int(np.clip(rng.lognormal(3.5, 0.9), 1, 1000))
        present = np.flatnonzero(row)
        parts = corpus.document(rng, len(labels), length, 0.0)
        for j in present:
            parts += corpus.document(rng, j, max(2, length // 4), 0.6)
        rng.shuffle(parts)
        texts.append(" ".join(parts))
    frame = pd.DataFrame({"id": ["".join(rng.choice(list("0123456789abcdef"), 16)) for _ in range(total)],
                          "comment_text": texts})
    frame[labels] = matrix
    train, test = frame.iloc[:rows], frame.iloc[rows:]
    io.write_csv(train, out / "train.csv")
    io.write_csv(test[["id", "comment_text"]], out / "test.csv")
    io.write_csv(pd.DataFrame({"id": test["id"], **{label: 0.5 for label in labels}}), out / "sample_submission.csv")
    io.write_csv(test[["id", *labels]], out / "answers" / "solution.csv")


def make_text(out: Path, layout: str, rows: int | None = None, seed: int = 0) -> Path:
    """Write a free-text competition in `layout` (one of TEXT_LAYOUTS) into `out`, with
    `rows` train rows (the test in the real file's proportion) and answers/solution.csv."""
    makers = dict(zip(TEXT_LAYOUTS, (_tweets, _authors, _comments)))
    if layout not in makers:
        raise io.InputError(f"synthetic text layout {layout!r}; known: {', '.join(TEXT_LAYOUTS)}")
    makers[layout](Path(out), rows or TEXT_ROWS["small"][layout], seed)
    return Path(out)
