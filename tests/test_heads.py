"""Extra output heads: a FER+ head trained beside FER-2013's, read through every runtime, saved, explained, refused."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from emotionkit import EmotionRecognizer
from emotionkit.exceptions import IncompatibleComponentsError, InvalidOptionError, InvalidWeightsError
from emotionkit.heads import FERPLUS_HEAD, OutputHead, head_columns, match_heads, output_width, parse_heads
from emotionkit.recognizer import build_backbone
from emotionkit.training.trainer import TrainConfig, Trainer
from emotionkit.types import EMOTIONS


@pytest.fixture(scope="module")
def head_run(tmp_path_factory, fer_csv):
    """A one-epoch small CNN with a FER+ head, trained by the CLI on 300 real FER-2013 faces and their FER+ votes."""
    from emotionkit.cli import main

    out = tmp_path_factory.mktemp("head") / "run"
    argv = ["train", "--data", str(fer_csv), "--out", str(out), "--epochs", "1", "--limit", "300", "--threads", "1"]
    argv += ["--no-report", "--no-progress", "--soft-targets", "ferplus", "--soft-target-weight", "0"]
    argv += ["--ferplus-head", "1.0", "--config", '{"widths": [8, 16, 32], "hidden": 32}']
    try:
        code = main(argv)
    except FileNotFoundError:
        pytest.skip("FER+ votes (ferplus/ferplus_votes.csv.gz) not found beside the FER-2013 CSV in EMOTIONKIT_DATA")
    assert code == 0
    return out


def test_the_trained_model_records_its_head_and_both_heads_answer(head_run, fer_faces):
    config = json.loads((head_run / "config.json").read_text())
    assert config["heads"]["ferplus"]["labels"] == list(EMOTIONS)
    assert json.loads((head_run / "train_config.json").read_text())["ferplus_head"] == 1.0
    rec = EmotionRecognizer.from_pretrained(head_run, detector=None, runtime="torch")
    assert rec.inference.outputs == 14 and rec.model(rec.preprocessor.faces(fer_faces[:2])).shape == (2, 14)
    x = rec.preprocessor.faces(fer_faces[:32])
    own, votes = rec.logits(x), rec.logits(x, head="ferplus")
    full = rec.inference.torch_runtime(x)
    assert torch.equal(own, full[:, :7]) and torch.equal(votes, full[:, 7:])
    assert not torch.allclose(own, votes, atol=1e-3)  # two heads, trained on different targets
    plain = rec.predict_proba(fer_faces[:32])
    rec.head = "ferplus"
    t = rec.heads["ferplus"].temperature  # the head's own, fitted on the validation votes
    assert rec.predict_proba(fer_faces[:32]) == pytest.approx(torch.softmax(votes / t, 1).numpy(), abs=1e-5)
    assert not np.allclose(plain, rec.predict_proba(fer_faces[:32]), atol=1e-3)


def test_every_runtime_gives_the_same_head(head_run, fer_faces, sample_photo):
    torch_rec = EmotionRecognizer.from_pretrained(head_run, runtime="torch", head="ferplus")
    for runtime in ("auto", "onnx"):
        other = EmotionRecognizer.from_pretrained(head_run, runtime=runtime, head="ferplus")
        assert other.runtime == "onnx"
        assert other.predict_proba(fer_faces[:16]) == pytest.approx(torch_rec.predict_proba(fer_faces[:16]), abs=1e-4)
        (face,) = other.predict(sample_photo)[:1]
        (ref,) = torch_rec.predict(sample_photo)[:1]
        assert face.label == ref.label and face.scores == pytest.approx(ref.scores, abs=1e-4)


def test_save_load_and_export_keep_the_head(head_run, tmp_path, fer_faces):
    rec = EmotionRecognizer.from_pretrained(head_run, detector=None, runtime="torch")
    again = EmotionRecognizer.from_pretrained(rec.save_pretrained(tmp_path / "copy"), detector=None, runtime="torch")
    assert again.heads == rec.heads
    x = rec.preprocessor.faces(fer_faces[:8])
    assert torch.equal(again.logits(x, head="ferplus"), rec.logits(x, head="ferplus"))
    from emotionkit.export import export_onnx, read_onnx_metadata

    path = export_onnx(rec, tmp_path / "m.onnx")
    t = rec.heads["ferplus"].temperature
    assert read_onnx_metadata(path)["heads"] == {"ferplus": {"labels": list(EMOTIONS), "temperature": t}}


def test_explaining_the_ferplus_head_explains_its_own_columns(head_run, fer_faces):
    from emotionkit.explainers import explain_faces
    from emotionkit.explainers.gradcam import GradCAM

    rec = EmotionRecognizer.from_pretrained(head_run, detector=None, runtime="torch", head="ferplus")
    maps = explain_faces(rec, fer_faces[:4], target="happy")
    cam = GradCAM(rec.inference.spec)
    x = rec.inference.prepare(rec.preprocessor.faces(fer_faces[:4]))
    happy = 7 + EMOTIONS.index("happy")
    assert maps == pytest.approx(cam(rec.model, x, [happy] * 4), abs=1e-5)
    assert not np.allclose(maps, cam(rec.model, x, [EMOTIONS.index("happy")] * 4), atol=1e-3)


def test_evaluate_scores_the_asked_head(head_run, fer_train_small):
    from emotionkit.training.evaluate import evaluate

    rec = EmotionRecognizer.from_pretrained(head_run, detector=None, runtime="torch")
    data = fer_train_small.subset(np.arange(300, 400))
    own, votes = evaluate(rec, data), evaluate(rec, data, head="ferplus")
    assert own["head"] is None and votes["head"] == "ferplus" and votes["n"] == own["n"] == 100
    pred = rec.logits(rec.preprocessor.faces(data.images), head="ferplus").argmax(1).numpy()
    assert votes["accuracy"] == pytest.approx(float((pred == data.labels).mean()))
    with pytest.raises(InvalidOptionError, match="no output head 'fer'"):
        evaluate(rec, data, head="fer")


def test_unknown_heads_are_refused_with_the_choices(head_run, tmp_path):
    with pytest.raises(InvalidOptionError, match="extra heads: 'ferplus'"):
        EmotionRecognizer.from_pretrained(head_run, detector=None, head="ferpluss")
    rec = EmotionRecognizer.from_pretrained("cnn", detector=None)
    with pytest.raises(InvalidOptionError, match="extra heads: none.*--ferplus-head"):
        rec.head = "ferplus"
    broken = tmp_path / "broken"
    shutil.copytree(head_run, broken, ignore=shutil.ignore_patterns("*.pt"))
    config = json.loads((broken / "config.json").read_text())
    (broken / "config.json").write_text(json.dumps({**config, "heads": {"ferplus": {"labels": []}}}))
    with pytest.raises(InvalidWeightsError, match="damaged.*Head 'ferplus' needs 'labels'"):
        EmotionRecognizer.from_pretrained(broken, detector=None)


def test_a_runtime_of_another_width_is_a_clear_error(head_run, fer_faces):
    rec = EmotionRecognizer.from_pretrained(head_run, detector=None, runtime="torch")
    plain = EmotionRecognizer.from_pretrained("cnn", detector=None, runtime="torch")
    rec.inference.use_runtime(plain.inference.torch_runtime)  # 7 outputs for a 14-output model
    with pytest.raises(IncompatibleComponentsError, match="gave 7 outputs.*has 14 .*head 'ferplus'"):
        rec.predict_proba(fer_faces[:2])


def test_ferplus_head_needs_the_votes(tmp_path):
    with pytest.raises(InvalidOptionError, match="needs soft_targets='ferplus'"):
        Trainer(TrainConfig(epochs=1, ferplus_head=1.0), tmp_path)
    with pytest.raises(InvalidOptionError, match="ferplus_head must be >= 0"):
        Trainer(TrainConfig(epochs=1, ferplus_head=-1.0, soft_targets="ferplus"), tmp_path)


def test_a_warm_start_copies_the_fer2013_head_into_the_new_one(fer_faces):
    """A bundled model widened to two heads: the FER+ head starts as the FER-2013 head, exactly."""
    source = EmotionRecognizer.from_pretrained("cnn", detector=None, runtime="torch", flip_tta=False)
    heads = {FERPLUS_HEAD: OutputHead(EMOTIONS)}
    wide = build_backbone("cnn", source.backbone_config, num_classes=output_width(EMOTIONS, heads))
    state = {k: v.float() for k, v in source.model.state_dict().items()}
    wide.load_state_dict(match_heads(state, source.inference, EMOTIONS, heads))
    x = source.preprocessor.faces(fer_faces[:16])
    with torch.inference_mode():
        out = wide.eval()(x)
    assert out[:, :7] == pytest.approx(source.logits(x), abs=1e-4)
    assert torch.equal(out[:, :7], out[:, 7:])
    back = build_backbone("cnn", source.backbone_config)  # and back to one head: the first columns
    back.load_state_dict(match_heads(wide.state_dict(), _Layout(EMOTIONS, heads), EMOTIONS, {}))
    with torch.inference_mode():
        assert torch.equal(back.eval()(x), out[:, :7])


class _Layout:
    def __init__(self, labels, heads):
        self.labels, self.heads = labels, heads


def test_head_columns_follow_the_labels():
    heads = parse_heads({"a": {"labels": ["x", "y"]}, "b": {"labels": ["z"], "temperature": 2}})
    assert head_columns(["p", "q", "r"], heads, None) == slice(0, 3)
    assert head_columns(["p", "q", "r"], heads, "a") == slice(3, 5)
    assert head_columns(["p", "q", "r"], heads, "b") == slice(5, 6)
    assert output_width(["p", "q", "r"], heads) == 6 and heads["b"].temperature == 2.0


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.floats(allow_nan=True) | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=200, deadline=None)
@given(
    raw=_json
    | st.dictionaries(
        st.sampled_from(["ferplus", ""]), st.dictionaries(st.sampled_from(["labels", "temperature"]), _json)
    )
)
def test_any_heads_value_parses_or_is_refused_clearly(raw):
    try:
        heads = parse_heads(raw)
    except InvalidOptionError as exc:
        assert "head" in str(exc).lower()
        return
    for name, head in heads.items():
        assert name and head.labels and all(isinstance(x, str) for x in head.labels) and head.temperature > 0


def test_the_ferplus_heads_temperature_is_fitted_on_the_validation_votes(head_run):
    meta = json.loads((head_run / "config.json").read_text())["meta"]["heads_calibration"]["ferplus"]
    assert meta["split"] == "validation" and meta["faces"] > 0
    head = json.loads((head_run / "config.json").read_text())["heads"]["ferplus"]
    assert head["temperature"] == (meta["fitted_temperature"] if meta["kept"] else 1.0)
    assert meta["kept"] == (meta["ece_after"] <= meta["ece_before"])


def test_a_one_head_copy_of_a_two_head_model_answers_with_its_own_labels(head_run, fer_faces):
    """What a Keras twin loads: the output layer cut to the FER-2013 head, the same logits."""
    from emotionkit.heads import own_head_state

    rec = EmotionRecognizer.from_pretrained(head_run, detector=None, runtime="torch")
    one = build_backbone("cnn", rec.backbone_config)
    one.load_state_dict(own_head_state(rec.model.state_dict(), rec.labels, rec.heads))
    x = rec.preprocessor.faces(fer_faces[:16])
    with torch.inference_mode():
        assert one.eval()(x) == pytest.approx(rec.logits(x), abs=1e-4)


def test_the_keras_twin_of_a_two_head_model_gives_its_fer2013_probabilities(head_run, fer_faces):
    pytest.importorskip("keras")
    import emotionkit.keras as ek

    rec = EmotionRecognizer.from_pretrained(head_run, detector=None, runtime="torch")
    for twin in (ek.from_pretrained(head_run), ek.from_recognizer(rec)):
        assert ek.predict_proba(twin, fer_faces[:16]) == pytest.approx(rec.predict_proba(fer_faces[:16]), abs=1e-4)


def test_the_cli_answers_with_the_asked_head(head_run, fer_faces, tmp_path, capsys):
    from PIL import Image

    from emotionkit.cli import main

    path = tmp_path / "face.png"
    Image.fromarray(fer_faces[0]).save(path)
    rec = EmotionRecognizer.from_pretrained(head_run, detector="none", head="ferplus")
    argv = ["predict", str(path), "--model", str(head_run), "--detector", "none", "--json"]
    assert main([*argv, "--head", "ferplus"]) == 0
    (face,) = json.loads(capsys.readouterr().out)[0]["faces"]
    assert face["scores"] == pytest.approx(rec.predict(path)[0].scores, abs=1e-5)
    assert main(argv) == 0  # the model's own head by default
    (own,) = json.loads(capsys.readouterr().out)[0]["faces"]
    assert own["scores"] != pytest.approx(face["scores"], abs=1e-3)
    assert main(["predict", str(path), "--model", "cnn", "--detector", "none", "--head", "ferplus"]) == 2
    assert "no output head 'ferplus'" in capsys.readouterr().err


def test_a_finish_that_adds_a_head_fits_only_that_head_on_frozen_features(tmp_path, fer_csv):
    """`--init-from cnn --epochs 0 --ferplus-head 1`: the bundled cnn, every weight as it was, plus a fitted FER+ head."""
    from emotionkit.cli import main
    from emotionkit.data.fer2013 import read_fer2013

    out = tmp_path / "probe"
    argv = ["train", "--data", str(fer_csv), "--out", str(out), "--backbone", "cnn", "--init-from", "cnn"]
    argv += ["--epochs", "0", "--limit", "600", "--threads", "1", "--no-report", "--no-progress"]
    argv += ["--soft-targets", "ferplus", "--ferplus-head", "1.0", "--no-bn-recalibration"]
    try:
        assert main(argv) == 0
    except FileNotFoundError:
        pytest.skip("FER+ votes (ferplus/ferplus_votes.csv.gz) not found beside the FER-2013 CSV in EMOTIONKIT_DATA")
    meta = json.loads((out / "config.json").read_text())["meta"]
    assert meta["heads_fit"]["ferplus"]["method"] == "linear probe on frozen features"
    assert meta["heads_fit"]["ferplus"]["faces"] > 400
    bundled = EmotionRecognizer.from_pretrained("cnn", detector=None, runtime="torch", flip_tta=False)
    probed = EmotionRecognizer.from_pretrained(out, detector=None, runtime="torch", flip_tta=False)
    x = bundled.preprocessor.faces(read_fer2013(fer_csv, usage="PublicTest", limit=64).images)
    assert torch.equal(probed.logits(x), bundled.logits(x))  # the FER-2013 head: untouched
    assert not torch.allclose(probed.logits(x, head="ferplus"), bundled.logits(x), atol=0.1)
    own = dict(bundled.model.state_dict())
    for key, value in probed.model.state_dict().items():  # every other tensor: the bundled one
        if value.shape == own[key].shape:
            assert torch.equal(value.float(), own[key].float()), key


def test_the_linear_probe_refuses_shapes_that_do_not_line_up():
    from emotionkit.training.head_probe import fit_linear_head, output_layer

    with pytest.raises(ValueError, match=r"\(N, D\) features and \(N, K\) targets"):
        fit_linear_head(torch.zeros(4, 3), torch.zeros(5, 2), torch.zeros(2, 3), torch.zeros(2))
    with pytest.raises(ValueError, match=r"start must be \(2, 3\) and \(2,\)"):
        fit_linear_head(torch.zeros(4, 3), torch.zeros(4, 2), torch.zeros(3, 3), torch.zeros(2))
    with pytest.raises(ValueError, match="no linear layer with 14 outputs"):
        output_layer(build_backbone("cnn"), 14)


def test_the_int8_export_of_a_two_head_model_scores_its_own_head(head_run, fer_csv, capsys):
    from emotionkit.cli import main
    from emotionkit.data.fer2013 import read_fer2013
    from emotionkit.data.splits import stratified_split

    out = head_run.parent / "int8.onnx"
    argv = ["export", str(head_run), "--int8", "--calibration-data", str(fer_csv), "--calibration-faces", "64"]
    assert main([*argv, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "-> logits (batch, 14)" in printed
    acc32 = float(printed.split("accuracy float32 ")[1].split(" ")[0])
    data = read_fer2013(fer_csv, usage="Training")
    _, val_index = stratified_split(data.labels, (0.9, 0.1), seed=0)
    val = data.subset(val_index)
    rec = EmotionRecognizer.from_pretrained(head_run, detector=None, runtime="torch", flip_tta=False)
    held = slice(64, 64 + 4000)
    pred = rec.logits(rec.preprocessor.faces(val.images[held])).argmax(1).numpy()
    assert acc32 == pytest.approx(float((pred == val.labels[held]).mean()), abs=2e-4)


def test_the_export_command_checks_every_heads_probabilities_against_torch(head_run, capsys):
    from emotionkit.cli import main

    out = head_run.parent / "float.onnx"
    assert main(["export", str(head_run), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "-> logits (batch, 14)" in printed
    assert float(printed.split("max |probability difference| ")[1].split(" ")[0]) < 1e-4
