"""Keras 3 twins of the CNN family: torch parity on real FER-2013 faces, fit, export and errors, per backend.

Each Keras backend runs in its own subprocess (``KERAS_BACKEND`` and a temporary
``KERAS_HOME`` set), once, doing every check and writing its findings as JSON; the
tests below assert on them. torch always runs; jax and tensorflow run where installed.
The torch references (randomly initialised backbones with batch-norm statistics from
real faces and randomised affine parameters, so every tensor matters) are built here.
This file is also the worker: ``python tests/test_keras.py TASK.json OUT.json``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve()
BACKENDS = ("torch", "jax", "tensorflow")
# Non-default configs on purpose: the Keras side must read them from config.json.
ARCHS = {
    "cnn": {"in_channels": 1, "image_size": 48, "convs_per_block": 2, "widths": [64, 128, 256]},
    "resnet": {"in_channels": 1, "image_size": 48, "strides": [2, 2, 2, 2]},
    "mobilenetv2": {"in_channels": 1, "image_size": 48},
}
TEMPERATURES = {"cnn": 1.0, "resnet": 1.5, "mobilenetv2": 0.8}
N_PARITY = 32
N_FIT, N_VAL = 160, 64
FIT_CONFIG = {"widths": [16, 32, 64], "hidden": 64, "conv_dropout": 0.1, "dropout": 0.2}
FIT = {
    "epochs": 5,
    "batch_size": 32,
    "learning_rate": 5e-3,
    "lr_patience": 0,
    "lr_factor": 0.5,
    "lr_min_delta": 0.1,
    "early_stopping_patience": 2,
}
TOL = 1e-4
WORKER_TIMEOUT = 1500  # seconds; a loaded 2-core machine can be 5-10x slower than an idle one


# ---------------------------------------------------------------------------------------------- torch side


def _torch_reference(arch: str, config: dict, faces: np.ndarray, out: Path) -> dict:
    """A torch backbone with realistic BN statistics and random affine parameters, saved like a trained model."""
    import torch
    from torch import nn

    from emotionkit.preprocessing import FacePreprocessor
    from emotionkit.recognizer import EmotionRecognizer, build_backbone

    torch.manual_seed(sum(map(ord, arch)))
    model = build_backbone(arch, config)
    pre = FacePreprocessor(size=48, channels=1)
    norms = [m for m in model.modules() if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))]
    with torch.no_grad():
        for m in norms:
            m.momentum = None  # running stats = the exact average over the calibration pass
        model.train()(pre.faces(faces[:64]))
        for m in norms:
            m.momentum = 0.1
            m.weight.uniform_(0.5, 1.5)
            m.bias.normal_(0.0, 0.2)
        # Trained-like confidence: logits with a standard deviation of 3, so probabilities are far from
        # uniform and a layout slip would move them much more than TOL.
        head = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
        scale = 3.0 / float(model.eval()(pre.faces(faces[:64])).std())
        head.weight.mul_(scale)
        head.bias.mul_(scale)
    rec = EmotionRecognizer(model, pre, backbone_name=arch, backbone_config=config, temperature=TEMPERATURES[arch])
    rec.save_pretrained(out / arch)
    probs = rec.predict_proba(faces[:N_PARITY])
    np.save(out / f"{arch}_expected.npy", probs)
    return {"dir": str(out / arch), "expected": str(out / f"{arch}_expected.npy"), "spread": float(probs.max(1).mean())}


def _bundled_reference(arch: str, faces: np.ndarray, out: Path) -> str | None:
    from emotionkit.recognizer import bundled_models

    if arch not in bundled_models():
        return None
    from emotionkit.recognizer import EmotionRecognizer

    probs = EmotionRecognizer.from_pretrained(arch, detector="none", flip_tta=False).predict_proba(faces[:N_PARITY])
    np.save(out / f"{arch}_bundled.npy", probs)
    return str(out / f"{arch}_bundled.npy")


@pytest.fixture(scope="module")
def task(tmp_path_factory, fer_train_small) -> dict:
    """Torch references, real faces and the fit split, written once for every backend's worker."""
    out = tmp_path_factory.mktemp("keras_task")
    faces, labels = fer_train_small.images, fer_train_small.labels
    assert len(faces) >= N_FIT + N_VAL + 64
    np.save(out / "faces.npy", faces)
    np.save(out / "labels.npy", labels)
    return {
        "faces": str(out / "faces.npy"),
        "labels": str(out / "labels.npy"),
        "models": {arch: _torch_reference(arch, cfg, faces, out) for arch, cfg in ARCHS.items()},
        "bundled": {arch: _bundled_reference(arch, faces, out) for arch in ARCHS},
    }


def _run_worker(backend: str, task: dict, tmp: Path) -> dict:
    if backend != "torch" and importlib.util.find_spec(backend) is None:
        pytest.skip(
            f"Keras backend {backend!r} is not installed (pip install {'jax' if backend == 'jax' else 'tensorflow-cpu'})"
        )
    if importlib.util.find_spec("keras") is None:
        pytest.skip("keras is not installed (pip install 'emotionkit[keras]')")
    (tmp / "task.json").write_text(json.dumps({**task, "work": str(tmp)}))
    env = {
        **os.environ,
        "KERAS_BACKEND": backend,
        "KERAS_HOME": str(tmp / "keras_home"),
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "JAX_PLATFORMS": "cpu",
        "CUDA_VISIBLE_DEVICES": "",
    }
    if (
        backend == "jax"
    ):  # XLA's CPU optimisations cost more compile time than these tiny runs save (16 s -> 5 s per fit)
        env["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_backend_optimization_level=0".strip()
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(HERE), str(tmp / "task.json"), str(tmp / "out.json")],
        env=env,
        capture_output=True,
        text=True,
        timeout=WORKER_TIMEOUT,
    )
    if proc.returncode != 0 or not (tmp / "out.json").is_file():
        pytest.fail(f"{backend} worker failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    result = json.loads((tmp / "out.json").read_text())
    result["wall_s"] = round(time.perf_counter() - start, 1)
    print(f"\n[keras {backend}] {json.dumps(result)}")
    return result


@pytest.fixture(scope="module", params=BACKENDS)
def worker(request, task, tmp_path_factory) -> dict:
    """Findings of one backend's worker subprocess."""
    return _run_worker(request.param, task, tmp_path_factory.mktemp(f"keras_{request.param}"))


# ---------------------------------------------------------------------------------------------- tests


@pytest.mark.parametrize("arch", ARCHS)
def test_probabilities_equal_torch_on_real_faces(worker, arch):
    found = worker["parity"][arch]
    assert found["backend"] == worker["requested_backend"]
    assert found["input_shape"] == [None, 48, 48, 1]  # NHWC
    assert found["max_abs_diff"] < TOL, found
    assert found["argmax_agreement"] == 1.0


def test_references_are_not_trivial(task):
    # Near-uniform outputs would let a wrong layout pass the 1e-4 check.
    assert all(m["spread"] > 0.4 for m in task["models"].values()), task["models"]


@pytest.mark.parametrize("arch", ARCHS)
def test_bundled_weights_load_into_keras(worker, task, arch):
    found = worker["pretrained"][arch]
    if task["bundled"][arch] is None:
        # No bundled weights yet: pretrained=True must say so clearly, not build a random model.
        assert found["error"] == "NoBundledWeightsError" and "LookupError" in found["bases"], found
        pytest.skip(f"no bundled {arch} weights yet ({found['message'][:80]}...)")
    assert found["max_abs_diff"] < TOL, found


def test_keras_model_exports_to_recognizer(worker):
    found = worker["export"]
    assert found["recognizer_vs_keras"] < TOL
    assert found["mobilenetv2_recognizer_vs_keras"] < TOL
    assert found["reloaded_vs_keras"] < TOL
    assert found["files"] == ["config.json", "model.safetensors", "preprocessor.json"]
    assert ARCHS["cnn"].items() <= found["backbone_config"].items()  # the twin kept the torch config


def test_fit_on_real_faces_loss_falls_and_callbacks_fire(worker):
    fit = worker["fit"]
    # learning_rate[e] is the rate during epoch e; the final one shows a reduction after the last epoch.
    loss, val_loss, lrs = fit["loss"], fit["val_loss"], [*fit["learning_rate"], fit["final_learning_rate"]]
    assert loss[-1] < loss[0] - 0.05, loss
    assert min(val_loss) < val_loss[0], val_loss
    # ModelCheckpoint wrote the best epoch (the bare model, no augmentation wrapper), and EarlyStopping
    # restored those same weights into the trained model.
    assert fit["checkpoint_exists"] and fit["checkpoint_layers_augmentation"] is False
    assert fit["checkpoint_vs_model"] < 1e-5
    # ReduceLROnPlateau with patience 0: the rate halves after exactly the epochs whose val_loss did not improve
    # (fall by more than lr_min_delta below the best so far).
    best, expected = float("inf"), [lrs[0]]
    for value in val_loss:
        improved = value + FIT["lr_min_delta"] < best
        best = value if improved else best
        expected.append(expected[-1] * (1.0 if improved else FIT["lr_factor"]))
    assert lrs == pytest.approx(expected, rel=1e-5), (val_loss, lrs)
    assert min(lrs) < lrs[0], f"no epoch failed to improve, so the LR was never reduced: {val_loss}"
    # EarlyStopping: training ran to the end, or stopped after `patience` epochs without improvement.
    epochs = len(loss)
    best_epoch = int(np.argmin(val_loss))
    assert epochs == FIT["epochs"] or epochs - 1 - best_epoch >= FIT["early_stopping_patience"]
    # The Keras-trained model, exported to torch, gives the same probabilities in EmotionRecognizer.
    assert fit["recognizer_vs_keras"] < TOL


def test_bad_inputs_raise_clear_errors(worker):
    errors = worker["errors"]
    unknown = errors["unknown_architecture"]
    assert unknown["error"] == "UnknownModelError" and "ValueError" in unknown["bases"]
    assert "Available: cnn, mobilenetv2, resnet" in unknown["message"] and "'vit'" in unknown["message"]
    other = errors["weights_of_another_architecture"]
    assert other["error"] == "IncompatibleComponentsError" and "look like weights of 'resnet'" in other["message"]
    config = errors["weights_of_another_config"]
    assert config["error"] == "IncompatibleComponentsError" and "backbone_config" in config["message"]
    mismatch = errors["shape_mismatch"]
    assert mismatch["error"] == "IncompatibleComponentsError" and "Shape mismatch" in mismatch["message"]
    assert errors["weights_untouched_after_error"] is True
    bad_size = errors["image_size_not_divisible"]
    assert bad_size["error"] == "IncompatibleComponentsError" and "image_size=50" in bad_size["message"]
    nchw = errors["channels_first_in_channels"]
    assert nchw["error"] == "IncompatibleComponentsError" and "(48, 48, 1)" in nchw["message"]
    faces = errors["nchw_faces"]
    assert faces["error"] == "InvalidImageError" and "ValueError" in faces["bases"]
    call = errors["keras_call_wrong_shape"]
    assert "ValueError" in call["bases"] and "(2, 1, 96, 96)" in call["message"], call
    loaded = errors["export_without_build_info"]
    assert loaded["error"] == "IncompatibleComponentsError" and "architecture=" in loaded["message"]
    assert errors["export_with_explicit_architecture"] < TOL
    labels = errors["fit_labels_mismatch"]
    assert labels["error"] == "InvalidDataError" and "(10,)" in labels["message"]
    bundled = errors["pretrained_with_clashing_config"]
    assert bundled["error"] in ("IncompatibleComponentsError", "NoBundledWeightsError")


def test_package_imports_whatever_the_backend(tmp_path):
    """``import emotionkit.keras`` never imports Keras; an unusable backend gives an install hint on first use."""
    if importlib.util.find_spec("keras") is None:
        pytest.skip("keras is not installed (pip install 'emotionkit[keras]')")
    code = (
        "import sys, emotionkit.keras as ek\n"
        "from emotionkit.exceptions import MissingDependencyError\n"
        "assert 'keras' not in sys.modules and 'build_cnn' in dir(ek)\n"
        "try:\n    ek.build_cnn()\nexcept MissingDependencyError as e:\n    print('OK', e)\n"
    )
    env = {**os.environ, "KERAS_BACKEND": "no-such-backend", "KERAS_HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith("OK") and "KERAS_BACKEND='no-such-backend'" in proc.stdout and "torch" in proc.stdout


def test_tensorflow_before_triton_raises_instead_of_crashing(tmp_path):
    """TensorFlow >= 2.20 imported first makes a later ``import triton`` segfault (tensorflow/tensorflow#124205).

    Exporting mobilenetv2 builds it with timm, which imports triton; emotionkit must refuse with an
    explanation rather than take the interpreter down.
    """
    missing = [m for m in ("keras", "tensorflow", "triton") if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} installed (the crash needs TensorFlow and torch's triton)")
    code = (
        "import tensorflow, emotionkit.keras as ek\n"
        "from emotionkit.exceptions import IncompatibleComponentsError\n"
        "model = ek.build_mobilenetv2(stem_stride=2, image_size=32)\n"
        "try:\n    ek.to_recognizer(model)\nexcept IncompatibleComponentsError as e:\n    print('OK', e)\n"
    )
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "KERAS_HOME": str(tmp_path), "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=WORKER_TIMEOUT)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-3000:])
    assert proc.stdout.startswith("OK") and "124205" in proc.stdout


def test_missing_keras_gives_install_hint(monkeypatch):
    from emotionkit.exceptions import MissingDependencyError
    from emotionkit.keras.builders import import_keras

    monkeypatch.setitem(sys.modules, "keras", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'emotionkit\[keras\]'"):
        import_keras()


def test_unknown_architecture_without_keras():
    from emotionkit.exceptions import UnknownModelError
    from emotionkit.keras import build

    with pytest.raises(UnknownModelError, match="torch backbones only"):
        build("vit")


# ---------------------------------------------------------------------------------------------- layouts (numpy only)

hypothesis = pytest.importorskip("hypothesis")
st = hypothesis.strategies


@hypothesis.settings(max_examples=25, deadline=None)
@hypothesis.given(
    c=st.integers(1, 5), h=st.integers(1, 4), w=st.integers(1, 4), out=st.integers(1, 4), seed=st.integers(0, 2**16)
)
def test_dense_after_flatten_matches_torch_order(c, h, w, out, seed):
    from emotionkit.keras.convert import dense_kernel_to_keras, dense_kernel_to_torch

    rng = np.random.default_rng(seed)
    weight = rng.normal(size=(out, c * h * w))
    x_chw = rng.normal(size=(c, h, w))
    kernel = dense_kernel_to_keras(weight, flattened=(h, w, c))
    np.testing.assert_allclose(x_chw.transpose(1, 2, 0).reshape(-1) @ kernel, weight @ x_chw.reshape(-1), atol=1e-9)
    np.testing.assert_array_equal(dense_kernel_to_torch(kernel, flattened=(h, w, c)), weight)


@hypothesis.settings(max_examples=25, deadline=None)
@hypothesis.given(o=st.integers(1, 6), i=st.integers(1, 6), k=st.sampled_from([1, 3, 5]), seed=st.integers(0, 2**16))
def test_conv_and_depthwise_kernels_round_trip(o, i, k, seed):
    from emotionkit.keras.convert import (
        conv_kernel_to_keras,
        conv_kernel_to_torch,
        depthwise_kernel_to_keras,
        depthwise_kernel_to_torch,
    )

    rng = np.random.default_rng(seed)
    weight = rng.normal(size=(o, i, k, k))
    kernel = conv_kernel_to_keras(weight)
    assert kernel.shape == (k, k, i, o) and kernel[0, k - 1, i - 1, 0] == weight[0, i - 1, 0, k - 1]
    np.testing.assert_array_equal(conv_kernel_to_torch(kernel), weight)
    dw = rng.normal(size=(o, 1, k, k))
    dk = depthwise_kernel_to_keras(dw)
    assert dk.shape == (k, k, o, 1) and dk[k - 1, 0, o - 1, 0] == dw[o - 1, 0, k - 1, 0]
    np.testing.assert_array_equal(depthwise_kernel_to_torch(dk), dw)


# ---------------------------------------------------------------------------------------------- the worker


def _describe(exc: BaseException) -> dict:
    return {"error": type(exc).__name__, "bases": [c.__name__ for c in type(exc).__mro__], "message": str(exc)}


def _error(fn) -> dict:
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 - the worker reports whatever was raised
        return _describe(exc)
    return {"error": None, "bases": [], "message": ""}


def _worker(task_path: str, out_path: str) -> None:  # pragma: no cover - runs in a subprocess
    from safetensors.numpy import load_file

    import emotionkit.keras as ek
    from emotionkit.keras.builders import import_keras
    from emotionkit.recognizer import EmotionRecognizer

    keras = import_keras()  # as emotionkit users get it (triton first where TensorFlow is installed)

    task = json.loads(Path(task_path).read_text())
    work = Path(task["work"])
    faces = np.load(task["faces"])
    labels = np.load(task["labels"])
    x = faces[:N_PARITY]
    res: dict = {
        "requested_backend": os.environ["KERAS_BACKEND"],
        "backend": keras.backend.backend(),
        "keras": keras.__version__,
    }
    timings: dict = {"import_cpu_s": round(time.process_time(), 2)}
    clock, cpu = time.perf_counter(), time.process_time()

    def lap(name: str) -> None:  # wall and CPU seconds of each phase (CPU counts all threads)
        nonlocal clock, cpu
        timings[name] = {"wall": round(time.perf_counter() - clock, 2), "cpu": round(time.process_time() - cpu, 2)}
        clock, cpu = time.perf_counter(), time.process_time()

    # Parity: torch model directories (non-default configs) -> Keras, on real faces.
    res["parity"], keras_models = {}, {}
    for arch, ref in task["models"].items():
        model = ek.from_pretrained(ref["dir"])
        keras_models[arch] = model
        got = ek.predict_proba(model, x)
        expected = np.load(ref["expected"])
        res["parity"][arch] = {
            "backend": keras.backend.backend(),
            "input_shape": list(model.input_shape),
            "max_abs_diff": float(np.abs(got - expected).max()),
            "argmax_agreement": float((got.argmax(1) == expected.argmax(1)).mean()),
        }
        lap(f"parity_{arch}")

    # Bundled weights (or the clear error while there are none).
    res["pretrained"] = {}
    for arch, expected_path in task["bundled"].items():
        builder = getattr(ek, f"build_{arch}")
        try:
            model = builder(pretrained=True)
        except Exception as exc:  # noqa: BLE001
            res["pretrained"][arch] = _describe(exc)
            continue
        got = ek.predict_proba(model, x)
        res["pretrained"][arch] = {
            "max_abs_diff": float(np.abs(got - np.load(expected_path)).max()) if expected_path else None
        }
    lap("pretrained")

    # Export: the cnn twin back to torch, in memory and through save_pretrained/from_pretrained.
    cnn = keras_models["cnn"]
    keras_probs = ek.predict_proba(cnn, x)
    rec = ek.to_recognizer(cnn)
    out_dir = ek.save_pretrained(cnn, work / "exported_cnn")
    reloaded = EmotionRecognizer.from_pretrained(out_dir, detector="none")
    mobilenet = keras_models["mobilenetv2"]
    mobilenet_rec = ek.to_recognizer(mobilenet)  # timm builds it: imports triton, after TensorFlow on that backend
    res["export"] = {
        "mobilenetv2_recognizer_vs_keras": float(
            np.abs(mobilenet_rec.predict_proba(x) - ek.predict_proba(mobilenet, x)).max()
        ),
        "recognizer_vs_keras": float(np.abs(rec.predict_proba(x) - keras_probs).max()),
        "reloaded_vs_keras": float(np.abs(reloaded.predict_proba(x) - keras_probs).max()),
        "files": sorted(p.name for p in out_dir.iterdir()),
        "backbone_config": json.loads((out_dir / "config.json").read_text())["backbone_config"],
    }
    lap("export")

    # A short real fit on FER-2013 faces: loss, callbacks, checkpoint, export of the trained model.
    train_x, train_y = faces[64 : 64 + N_FIT], labels[64 : 64 + N_FIT]
    val_x, val_y = faces[64 + N_FIT : 64 + N_FIT + N_VAL], labels[64 + N_FIT : 64 + N_FIT + N_VAL]
    keras.utils.set_random_seed(0)  # the initial weights too, so each backend's run is reproducible
    model = ek.build_cnn(**FIT_CONFIG)
    checkpoint = work / "best.keras"
    history = ek.fit(
        model,
        train_x,
        train_y,
        validation_data=(val_x, val_y),
        checkpoint=checkpoint,
        seed=0,
        verbose=0,
        **FIT,
    )
    h = {k: [float(v) for v in vals] for k, vals in history.history.items()}
    trained_probs = ek.predict_proba(model, val_x)
    loaded = keras.models.load_model(checkpoint)
    loaded_probs = np.asarray(loaded.predict(ek.nhwc_faces(val_x), verbose=0))
    exported = ek.to_recognizer(model)
    res["fit"] = {
        **{k: h[k] for k in ("loss", "val_loss", "accuracy", "val_accuracy", "learning_rate")},
        "final_learning_rate": float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)),
        "checkpoint_exists": checkpoint.is_file(),
        "checkpoint_layers_augmentation": any("random" in layer.name for layer in loaded.layers),
        "checkpoint_vs_model": float(np.abs(loaded_probs - trained_probs).max()),
        "recognizer_vs_keras": float(np.abs(exported.predict_proba(val_x) - trained_probs).max()),
    }
    lap("fit")

    # Bad input.
    resnet_state = load_file(str(Path(task["models"]["resnet"]["dir"]) / "model.safetensors"))
    cnn_state = load_file(str(Path(task["models"]["cnn"]["dir"]) / "model.safetensors"))
    default_cnn = ek.build_cnn()
    before = [np.array(keras.ops.convert_to_numpy(v)) for v in default_cnn.weights]
    wide_cnn = ek.build_cnn(widths=(64, 128, 256), convs_per_block=2, image_size=96)
    errors = {
        "unknown_architecture": _error(lambda: ek.build("vitt")),
        "weights_of_another_architecture": _error(lambda: ek.load_torch_weights(default_cnn, resnet_state)),
        "weights_of_another_config": _error(lambda: ek.load_torch_weights(default_cnn, cnn_state)),
        "shape_mismatch": _error(lambda: ek.load_torch_weights(wide_cnn, cnn_state)),
        "image_size_not_divisible": _error(lambda: ek.build_cnn(image_size=50)),
        "channels_first_in_channels": _error(lambda: ek.build_cnn(in_channels=48)),
        "nchw_faces": _error(lambda: ek.predict_proba(default_cnn, np.zeros((2, 1, 48, 48), np.uint8))),
        "export_without_build_info": _error(lambda: ek.to_recognizer(loaded)),
        "fit_labels_mismatch": _error(
            lambda: ek.fit(default_cnn, train_x[:10], train_y[:9], epochs=1, checkpoint=work / "x.keras")
        ),
        "pretrained_with_clashing_config": _error(lambda: ek.build_cnn(pretrained=True, widths=(8, 16, 32))),
    }
    after = [np.array(keras.ops.convert_to_numpy(v)) for v in default_cnn.weights]
    errors["weights_untouched_after_error"] = all(np.array_equal(a, b) for a, b in zip(before, after))
    explicit = ek.to_recognizer(loaded, architecture="cnn", config={"in_channels": 1, "image_size": 48, **FIT_CONFIG})
    errors["export_with_explicit_architecture"] = float(np.abs(explicit.predict_proba(val_x) - trained_probs).max())
    # Keras' own check of the input shape; last, as on JAX a failed predict leaves that model's variables unusable.
    errors["keras_call_wrong_shape"] = _error(lambda: wide_cnn.predict(np.zeros((2, 1, 96, 96), np.float32), verbose=0))
    res["errors"] = errors
    lap("errors")
    res["timings_s"] = timings
    Path(out_path).write_text(json.dumps(res))


if __name__ == "__main__":  # pragma: no cover
    _worker(sys.argv[1], sys.argv[2])
