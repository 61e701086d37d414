"""FER+ votes: row alignment with FER-2013, the majority rule, soft targets and their loss, on the real files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from emotionkit.data.ferplus import (
    FERPLUS_COLUMNS,
    contempt_majority,
    majority_labels,
    read_ferplus,
    relabel_by_majority,
    vote_distribution,
)
from emotionkit.exceptions import InvalidDataError, InvalidOptionError
from emotionkit.training.soft_targets import mixed_targets, soft_cross_entropy
from emotionkit.types import EMOTIONS


@pytest.fixture(scope="module")
def votes(fer_csv):
    try:
        return read_ferplus(fer_csv)
    except FileNotFoundError:
        pytest.skip("FER+ votes (ferplus/ferplus_votes.csv.gz) not found beside the FER-2013 CSV in EMOTIONKIT_DATA")


@pytest.fixture(scope="module")
def public_small(fer_csv):
    from emotionkit.data.fer2013 import read_fer2013

    return read_fer2013(fer_csv, usage="PublicTest", limit=400)


def _reference_majority(row: np.ndarray) -> str | None:
    """The FER+ paper's rule written out plainly, one face at a time."""
    kept = {name: n for name, n in zip(FERPLUS_COLUMNS, row) if n > 1}
    total = sum(kept.values())
    for name, n in kept.items():
        if n > total / 2:
            return name
    return None


_FER2013_NAME = {
    "anger": "angry",
    "disgust": "disgust",
    "fear": "fear",
    "happiness": "happy",
    "sadness": "sad",
    "surprise": "surprise",
    "neutral": "neutral",
}


def test_file_lines_up_with_fer2013(votes, fer_train_small):
    assert votes.votes.shape == (len(votes.rows), 10) and (votes.rows == np.arange(len(votes.rows))).all()
    dropped = ~votes.present
    assert int(dropped.sum()) == 159 and int((dropped & (votes.usage == "Training")).sum()) == 149  # README
    counts, present = votes.for_ids(fer_train_small.ids, fer_train_small.labels)
    assert counts.shape == (len(fer_train_small), 10) and present.any()
    assert (counts[~present] == 0).all() and (counts[present].sum(1) >= 9).all()
    # Off by one row, the labels FER+ copied no longer match FER-2013's: refused.
    with pytest.raises(InvalidDataError, match="do not line up"):
        votes.for_ids(fer_train_small.ids + 1, fer_train_small.labels)
    with pytest.raises(InvalidDataError, match="no votes for FER-2013 row id"):
        votes.for_ids(np.array([len(votes.rows) + 5]))


def test_majority_rule_matches_the_paper_on_real_votes(votes, public_small):
    counts, present = votes.for_ids(public_small.ids, public_small.labels)
    ours = majority_labels(counts)
    for row, label, has in zip(counts, ours, present):
        expected = _reference_majority(row) if has else None
        mapped = _FER2013_NAME.get(expected or "")
        assert (EMOTIONS[label] if label >= 0 else None) == mapped, (row, label)
    assert (ours >= 0).mean() > 0.8  # most faces have a majority


def test_relabelled_public_test(votes, public_small):
    kept, info = relabel_by_majority(public_small, votes)
    assert info["n"] == len(kept) and info["n"] + info["no_votes"] + info["contempt"] + info["left_out"] == 400
    agree = float((kept.labels == public_small.subset(np.isin(public_small.ids, kept.ids)).labels).mean())
    assert 0.5 < agree < 0.95  # FER+ relabels a good part of FER-2013 (README: ~63% agreement overall)


@settings(max_examples=200, deadline=None)
@given(arrays(np.int64, (5, 10), elements=st.integers(0, 10)))
def test_majority_rule_property(counts):
    ours = majority_labels(counts.astype(np.float32))
    for row, label in zip(counts, ours):
        mapped = _FER2013_NAME.get(_reference_majority(row) or "")
        assert (EMOTIONS[label] if label >= 0 else None) == mapped
    assert (contempt_majority(counts) == [(_reference_majority(r) == "contempt") for r in counts]).all()


def test_vote_distribution_is_the_seven_class_share(votes, public_small):
    counts, present = votes.for_ids(public_small.ids, public_small.labels)
    dist, ok = vote_distribution(counts)
    assert np.allclose(dist[ok].sum(1), 1.0) and (dist[~ok] == 0).all()
    i = int(np.flatnonzero(ok)[0])
    happy = FERPLUS_COLUMNS.index("happiness")
    seven = sum(counts[i, FERPLUS_COLUMNS.index(c)] for c in _FER2013_NAME)
    assert dist[i, EMOTIONS.index("happy")] == pytest.approx(counts[i, happy] / seven)


def test_soft_loss_reduces_to_the_hard_loss_and_follows_the_votes(fer_train_small, votes):
    from emotionkit import EmotionRecognizer

    rec = EmotionRecognizer.from_pretrained("cnn", detector=None)
    data = fer_train_small.subset(np.arange(128))
    with torch.no_grad():
        logits = rec.logits(rec.preprocessor.faces(data.images))
    y = torch.as_tensor(data.labels)
    counts, present = votes.for_ids(data.ids, data.labels)
    dist, ok = vote_distribution(counts)
    plain = mixed_targets(data.labels, dist, present & ok, weight=0.0, label_smoothing=0.1)
    expected = F.cross_entropy(logits, y, label_smoothing=0.1)
    assert float(soft_cross_entropy(logits, torch.as_tensor(plain))) == pytest.approx(float(expected), rel=1e-5)
    w = torch.rand(7)
    weighted = mixed_targets(data.labels, dist, present & ok, weight=0.0)
    expected_w = F.cross_entropy(logits, y, weight=w)
    got_w = soft_cross_entropy(logits, torch.as_tensor(weighted), w[y])
    assert float(got_w) == pytest.approx(float(expected_w), rel=1e-5)
    only_votes = mixed_targets(data.labels, dist, present & ok, weight=1.0)
    assert np.allclose(only_votes[present & ok], dist[present & ok])
    # Faces without votes keep their label's target.
    assert np.allclose(only_votes[~(present & ok)].argmax(1), data.labels[~(present & ok)])
    with pytest.raises(InvalidOptionError, match=r"in \[0, 1\]"):
        mixed_targets(data.labels, dist, ok, weight=1.5)


def test_train_command_with_ferplus_soft_targets(tmp_path, fer_csv):
    import json

    from emotionkit.cli import main

    out = tmp_path / "run"
    code = main(
        [
            "train",
            "--data",
            str(fer_csv),
            "--out",
            str(out),
            "--epochs",
            "1",
            "--limit",
            "300",
            "--threads",
            "1",
            "--no-report",
            "--no-progress",
            "--soft-targets",
            "ferplus",
            "--soft-target-weight",
            "0.7",
            "--config",
            '{"widths": [8, 16, 32], "hidden": 32}',
        ]
    )
    assert code == 0
    config = json.loads((out / "train_config.json").read_text())
    assert config["soft_targets"] == "ferplus" and config["soft_target_weight"] == 0.7
    history = json.loads((out / "history.json").read_text())
    assert np.isfinite(history[0]["train_loss"])


def test_fit_refuses_soft_targets_it_was_not_told_about(tmp_path, fer_train_small):
    from emotionkit.training.trainer import TrainConfig, Trainer

    data = fer_train_small
    trainer = Trainer(TrainConfig(epochs=1, soft_targets="ferplus", threads=1), tmp_path, log=lambda _: None)
    with pytest.raises(InvalidOptionError, match="needs the distributions"):
        trainer.fit(data, data)
    plain = Trainer(TrainConfig(epochs=1, threads=1), tmp_path / "plain", log=lambda _: None)
    with pytest.raises(InvalidOptionError, match="config.soft_targets is not set"):
        plain.fit(data, data, soft_targets=(np.zeros((len(data), 7)), np.zeros(len(data), bool)))
