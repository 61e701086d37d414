"""The classifier written as an onnxruntime graph (runtime="auto"): parity with torch, following the weights, errors."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

pytest.importorskip("onnxruntime", reason="onnxruntime is a core dependency; this install lacks it")

from emotionkit.inference import TorchRuntime  # noqa: E402
from emotionkit.onnx_graph import OnnxGraphRuntime, UnsupportedGraphError, build_graph, use_onnx_graph  # noqa: E402
from emotionkit.preprocessing import FacePreprocessor  # noqa: E402
from emotionkit.recognizer import EmotionRecognizer, build_backbone, bundled_models  # noqa: E402
from emotionkit.registry import load_plugin  # noqa: E402

CONVOLUTIONAL = [m for m in ("cnn", "resnet", "mobilenetv2", "efficientnet") if m in bundled_models()]


def _untrained(name: str) -> EmotionRecognizer:
    """An untrained recognizer with BatchNorm statistics off their defaults (so folding has work to do)."""
    torch.manual_seed(0)
    spec = load_plugin("backbones", name)
    model = build_backbone(name).train()
    pre = FacePreprocessor(**spec.preprocessing)
    with torch.no_grad():
        for _ in range(2):
            model(pre.faces(np.random.default_rng(0).integers(0, 256, (8, 48, 48), dtype=np.uint8)))
    return EmotionRecognizer(model.eval(), pre, backbone_name=name, backbone_config=spec.default_config)


@pytest.mark.parametrize("name", CONVOLUTIONAL)
def test_auto_runs_bundled_convnets_on_the_graph_with_torch_parity(name, fer_faces):
    fast = EmotionRecognizer.from_pretrained(name, detector="none")
    slow = EmotionRecognizer.from_pretrained(name, detector="none", runtime="torch")
    assert fast.runtime == "onnx" and isinstance(fast.inference.runtime, OnnxGraphRuntime)
    assert slow.runtime == "torch"
    x = fast.preprocessor.faces(fer_faces[:48])
    got, expected = fast.inference.logits(x), slow.inference.logits(x)
    np.testing.assert_allclose(got.numpy(), expected.numpy(), atol=1e-4, rtol=0)
    assert (got.argmax(1) == expected.argmax(1)).all()
    assert expected.std(0).max() > 0.5  # real faces get different answers: the check is not vacuous
    assert fast.inference.logits(x[:0]).shape == (0, 7)
    one = fast.predict_proba(fer_faces[:1])  # batch 1, the photo case
    np.testing.assert_allclose(one, slow.predict_proba(fer_faces[:1]), atol=1e-5, rtol=0)


def test_untrained_efficientnet_and_unfolded_batch_norm_match_torch(fer_faces):
    rec = _untrained("efficientnet")
    x = rec.preprocessor.faces(fer_faces[:8])
    runtime = OnnxGraphRuntime(rec.inference.torch_runtime, tuple(x.shape[1:]))
    np.testing.assert_allclose(runtime(x).numpy(), rec.inference.logits(x).numpy(), atol=1e-4, rtol=0)


def test_vit_stays_on_torch_and_says_so():
    rec = EmotionRecognizer.from_pretrained("vit", detector="none")
    assert rec.runtime == "torch"
    with pytest.raises(UnsupportedGraphError, match="flatten"):
        OnnxGraphRuntime(rec.inference.torch_runtime, (rec.preprocessor.channels, *rec.preprocessor.size))


def test_the_graph_follows_weight_changes_and_training_mode(fer_faces):
    rec = _untrained("cnn")
    assert use_onnx_graph(rec.inference) and rec.runtime == "onnx"
    x = rec.preprocessor.faces(fer_faces[:16])
    before = rec.inference.logits(x)
    conv = next(m for m in rec.inference.model.modules() if isinstance(m, nn.Conv2d))
    with torch.no_grad():
        conv.weight.mul_(-1.5)  # in place
    after = rec.inference.logits(x)
    assert (after - before).abs().max() > 1e-2
    np.testing.assert_allclose(after.numpy(), rec.inference.torch_runtime(x).numpy(), atol=1e-4, rtol=0)
    head = [m for m in rec.inference.model.modules() if isinstance(m, nn.Linear)][-1]
    head.bias = nn.Parameter(head.bias.detach() + torch.arange(7.0))  # a replaced parameter
    np.testing.assert_allclose(
        rec.inference.logits(x).numpy(), rec.inference.torch_runtime(x).numpy(), atol=1e-4, rtol=0
    )
    relu = next(n for n, m in rec.inference.model.named_modules() if isinstance(m, nn.ReLU))
    parent, _, child = relu.rpartition(".")
    owner = rec.inference.model.get_submodule(parent) if parent else rec.inference.model
    setattr(owner, child, nn.GELU())  # a layer the graph cannot hold: torch computes it, and says so
    assert rec.runtime == "torch"
    gelu = rec.inference.logits(x)
    np.testing.assert_allclose(gelu.numpy(), rec.inference.torch_runtime(x).numpy(), atol=1e-6, rtol=0)
    setattr(owner, child, nn.ReLU())
    assert rec.runtime == "onnx"
    rec.inference.model.train()  # batch statistics and dropout: only torch computes that
    assert rec.runtime == "torch"
    torch.manual_seed(1)
    trained = rec.inference.logits(x)
    torch.manual_seed(1)
    np.testing.assert_allclose(trained.numpy(), rec.inference.torch_runtime(x).numpy(), atol=1e-6, rtol=0)
    rec.inference.model.eval()


def test_threads_follow_torch_and_the_runtime_pickles(fer_faces):
    rec = _untrained("resnet")
    assert use_onnx_graph(rec.inference)
    runtime = rec.inference.runtime
    x = rec.preprocessor.faces(fer_faces[:4])
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        first = runtime.session()
        assert first.get_session_options().intra_op_num_threads == 1
        torch.set_num_threads(2)
        assert runtime.session() is not first and runtime.session().get_session_options().intra_op_num_threads == 2
    finally:
        torch.set_num_threads(threads)
    clone = pickle.loads(pickle.dumps(rec))
    assert clone.runtime == "onnx"
    np.testing.assert_allclose(clone.inference.logits(x).numpy(), rec.inference.logits(x).numpy(), atol=1e-6)


class _Branchy(nn.Module):
    def forward(self, x):
        return x if x.sum() > 0 else -x  # data-dependent: torch.fx cannot trace it


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (nn.Sequential(nn.Conv2d(1, 4, 3), nn.GELU(), nn.Flatten(), nn.Linear(4 * 46 * 46, 7)), "GELU"),
        (nn.Sequential(nn.Conv2d(1, 4, 3, padding="same"), nn.Flatten(), nn.Linear(4 * 48 * 48, 7)), "padding='same'"),
        (nn.Sequential(nn.Conv2d(1, 4, 3), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, 7)), "to 2"),
        (nn.Sequential(nn.Conv2d(1, 7, 48), nn.Linear(1, 7)), "Linear on a 4-D input"),
        (_Branchy(), "cannot trace"),
    ],
)
def test_unsupported_models_are_named_and_auto_keeps_torch(model, message):
    with pytest.raises(UnsupportedGraphError, match=message):
        build_graph(model.eval(), (1, 48, 48))
    rec = EmotionRecognizer(model.eval(), FacePreprocessor())
    assert not use_onnx_graph(rec.inference) and rec.runtime == "torch"


def test_a_model_on_another_device_is_refused_before_onnxruntime_is_asked():
    runtime = TorchRuntime(nn.Sequential(nn.Flatten(), nn.Linear(4, 7)))
    runtime.device = torch.device("meta")
    with pytest.raises(UnsupportedGraphError, match="on meta"):
        OnnxGraphRuntime(runtime, (1, 2, 2))


_LAYER = st.sampled_from(["relu", "relu6", "maxpool", "avgpool", "none"])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    channels=st.sampled_from([1, 3]),
    size=st.integers(12, 40),
    blocks=st.lists(
        st.tuples(st.integers(1, 3), st.integers(1, 2), st.integers(0, 1), st.booleans(), _LAYER, st.booleans()),
        min_size=1,
        max_size=4,
    ),
    batch=st.integers(1, 5),
)
def test_any_small_convnet_of_the_supported_layers_matches_torch(channels, size, blocks, batch):
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    width, side = channels, size
    for kernel, stride, pad, depthwise, layer, norm in blocks:
        out = width if depthwise else 8
        if side + 2 * pad < kernel:
            continue
        layers.append(nn.Conv2d(width, out, kernel, stride, pad, groups=width if depthwise else 1, bias=not norm))
        side = (side + 2 * pad - kernel) // stride + 1
        width = out
        if norm:
            bn = nn.BatchNorm2d(width)
            bn.running_mean.uniform_(-1, 1), bn.running_var.uniform_(0.5, 2)
            layers.append(bn)
        if layer in ("maxpool", "avgpool") and side >= 2:
            layers.append(nn.MaxPool2d(2, ceil_mode=True) if layer == "maxpool" else nn.AvgPool2d(2))
            side = -(-side // 2) if layer == "maxpool" else side // 2
        elif layer in ("relu", "relu6"):
            layers.append(nn.ReLU() if layer == "relu" else nn.ReLU6())
    model = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 7)).eval()
    runtime = TorchRuntime(model)
    graph = OnnxGraphRuntime(runtime, (channels, size, size))
    x = torch.rand(batch, channels, size, size) * 4 - 2
    np.testing.assert_allclose(graph(x).numpy(), runtime(x).numpy(), atol=1e-4, rtol=1e-4)
