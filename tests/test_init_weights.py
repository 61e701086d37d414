"""``emotionkit train --init PATH``: a local state dict mapped strictly onto the backbone, and the ImageNet converter.

Real parts: the bundled cnn's weights as the file to start from, real FER-2013 faces as inputs, and
torchvision's / timm's MobileNetV2 (randomly initialised: no download) for the converter's mapping.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from emotionkit import EmotionRecognizer
from emotionkit.exceptions import IncompatibleComponentsError, InvalidOptionError
from emotionkit.training.init_weights import load_init_weights
from emotionkit.training.trainer import TrainConfig, Trainer


def _bundled_cnn() -> EmotionRecognizer:
    return EmotionRecognizer.from_pretrained("cnn", detector=None, flip_tta=False)  # the network's own logits


def _cnn_config(init: str) -> TrainConfig:
    rec = _bundled_cnn()
    return TrainConfig(
        backbone="cnn",
        backbone_config=dict(rec.backbone_config),
        preprocessing=rec.preprocessor.to_dict(),
        epochs=1,
        init=init,
        threads=1,
        progress=False,
    )


def _state_file(tmp_path: Path, drop: tuple[str, ...] = (), name: str = "start.safetensors") -> Path:
    state = {k: v.float().contiguous() for k, v in _bundled_cnn().model.state_dict().items() if k not in drop}
    path = tmp_path / name
    if path.suffix == ".safetensors":
        save_file(state, str(path))
    else:
        torch.save({"state_dict": state}, path)
    return path


def _head_keys() -> tuple[str, ...]:
    from emotionkit.training.finetune import head_index, layer_groups

    model = _bundled_cnn().model
    groups = layer_groups(model)
    name = groups[head_index(groups, model)][0]
    return tuple(k for k in model.state_dict() if k.startswith(name + "."))


@pytest.mark.parametrize("name", ["start.safetensors", "start.pt"])
def test_init_file_reproduces_the_trained_model_on_real_faces(tmp_path, fer_faces, name):
    path = _state_file(tmp_path, name=name)
    trainer = Trainer(_cnn_config(str(path)), tmp_path / "run", log=lambda _: None)
    bundled = _bundled_cnn()
    x = bundled.preprocessor.faces(fer_faces)
    started = EmotionRecognizer(trainer.model.eval(), trainer.preprocessor, None, backbone_name="cnn")
    # fp16 bundled weights read as float32 on both sides: the same network, the same logits.
    np.testing.assert_allclose(started.logits(x).numpy(), bundled.logits(x).numpy(), atol=1e-4)
    assert trainer._init_weights is not None and trainer._init_weights["fresh"] == []


def test_head_may_be_absent_and_is_trained_fresh(tmp_path, fer_faces):
    head = _head_keys()
    path = _state_file(tmp_path, drop=head)
    trainer = Trainer(_cnn_config(str(path)), tmp_path / "run", log=lambda _: None)
    info = trainer._init_weights
    assert info is not None and info["fresh"] == sorted(head)
    bundled = _bundled_cnn().model.state_dict()
    own = trainer.model.state_dict()
    for key, value in own.items():
        if key in head:
            assert not torch.equal(value, bundled[key].float())  # a new head, not the trained one
        else:
            assert torch.equal(value, bundled[key].float()), key


def test_mismatches_are_refused_with_the_names(tmp_path):
    state = {k: v.float().contiguous() for k, v in _bundled_cnn().model.state_dict().items()}
    body = next(k for k in state if k.endswith("weight") and state[k].ndim == 4)
    missing = {k: v for k, v in state.items() if k != body}
    extra = {**state, "stem.extra.weight": torch.zeros(3)}
    wrong = {**state, body: torch.zeros(1, 1, 1, 1)}
    for label, tensors, expected in (
        ("missing", missing, f"missing from the file (1): {body}"),
        ("extra", extra, "not in the model (1): stem.extra.weight"),
        ("shape", wrong, f"shapes differ, file vs model (1): {body} (1, 1, 1, 1) vs"),
    ):
        path = tmp_path / f"{label}.safetensors"
        save_file(tensors, str(path))
        with pytest.raises(IncompatibleComponentsError) as err:
            Trainer(_cnn_config(str(path)), tmp_path / label, log=lambda _: None)
        assert expected in str(err.value), label


def test_missing_file_and_a_file_without_tensors(tmp_path):
    with pytest.raises(InvalidOptionError, match="no such file"):
        Trainer(_cnn_config(str(tmp_path / "absent.safetensors")), tmp_path / "run", log=lambda _: None)
    path = tmp_path / "empty.pt"
    torch.save({"epoch": 3}, path)
    with pytest.raises(InvalidOptionError, match="holds no tensors"):
        load_init_weights(torch.nn.Linear(2, 2), path)


def test_init_file_and_init_from_together_are_refused(tmp_path):
    path = _state_file(tmp_path)
    config = _cnn_config(str(path))
    config.init_from = "cnn"
    with pytest.raises(IncompatibleComponentsError, match="both set the starting weights"):
        Trainer(config, tmp_path / "run", log=lambda _: None)


def test_run_records_the_init_file_and_its_sha256(tmp_path, fer_train_small):
    from emotionkit.weights import sha256sum

    path = _state_file(tmp_path, drop=_head_keys())
    data = fer_train_small.subset(np.arange(200))
    Trainer(_cnn_config(str(path)), tmp_path / "run", log=lambda _: None).fit(
        data.subset(np.arange(160)), data.subset(np.arange(160, 200))
    )
    meta = EmotionRecognizer.from_pretrained(tmp_path / "run", detector=None).meta
    record = meta["training"]["init_weights"]
    assert record["sha256"] == sha256sum(path) and record["path"] == str(path)
    assert meta["training"]["config"]["init"] == str(path)


# ---------------------------------------------------------------------------------------------- the converter


def _faces3(fer_faces: np.ndarray, size: int = 64) -> torch.Tensor:
    x = torch.from_numpy(fer_faces[:8]).float()[:, None] / 255.0
    return torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


def test_converter_maps_torchvision_onto_timm_and_folds_the_stem(fer_faces, repo_script):
    tv_models = pytest.importorskip("torchvision.models")
    import timm

    conv = repo_script("tools/convert_imagenet_mobilenetv2.py")
    torch.manual_seed(0)
    tv = tv_models.mobilenet_v2().eval()
    with torch.no_grad():  # batch-norm statistics off their defaults, so every tensor matters
        for m in tv.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    ref = timm.create_model("mobilenetv2_100").eval()
    state = conv.remap_to_timm(tv.state_dict(), list(ref.state_dict()))
    ref.load_state_dict(state, strict=True)
    grey = _faces3(fer_faces)
    std = torch.tensor(conv.IMAGENET_STD).view(1, 3, 1, 1)
    x3 = (grey.expand(-1, 3, -1, -1) - conv.GREY_MEAN) / std
    with torch.no_grad():
        a = tv(x3)
        np.testing.assert_allclose(ref(x3).numpy(), a.numpy(), atol=1e-4)
        one = timm.create_model("mobilenetv2_100", in_chans=1).eval()
        one.load_state_dict({**state, "conv_stem.weight": conv.fold_rgb_stem(state["conv_stem.weight"])})
        b = one((grey - conv.GREY_MEAN) / conv.GREY_STD)
    np.testing.assert_allclose(b.numpy(), a.numpy(), atol=1e-3)  # the fold is exact, padding included


def test_converter_refuses_another_network(repo_script):
    conv = repo_script("tools/convert_imagenet_mobilenetv2.py")
    with pytest.raises(SystemExit, match="not the same network"):
        conv.remap_to_timm({"a": torch.zeros(1)}, ["a", "b"])


def test_lite0_converter_maps_the_checkpoint_naming_onto_timm_and_folds_the_stem(tmp_path, fer_faces, repo_script):
    """A Lite0 state dict under the checkpoint's own names lands on timm's keys; the folded stem is exact;
    the result trains as ``--backbone efficientnet --init PATH`` with every tensor but the head loaded."""
    import timm

    conv = repo_script("tools/convert_imagenet_efficientnet_lite0.py")
    torch.manual_seed(0)
    source_net = timm.create_model("efficientnet_lite0").eval()
    with torch.no_grad():  # batch-norm statistics off their defaults, so every tensor matters
        for m in source_net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    # The checkpoint's naming (efficientnet_pytorch): same tensors, same order, other names.
    source = {f"_t{i}.{k.rsplit('.', 1)[-1]}": v for i, (k, v) in enumerate(source_net.state_dict().items())}
    state = conv.remap_to_timm(source, list(source_net.state_dict()))
    grey = _faces3(fer_faces, size=96)
    with torch.no_grad():
        a = source_net(((grey - conv.MEAN) / conv.STD).expand(-1, 3, -1, -1))
        one = timm.create_model("efficientnet_lite0", in_chans=1).eval()
        one.load_state_dict({**state, "conv_stem.weight": conv.fold_rgb_stem(state["conv_stem.weight"])})
        b = one((grey - conv.MEAN) / conv.STD)
    np.testing.assert_allclose(b.numpy(), a.numpy(), atol=1e-4)  # exact fold: same mean and std on every channel
    with pytest.raises(SystemExit, match="not the same network"):
        conv.remap_to_timm(dict(list(source.items())[:-1]), list(source_net.state_dict()))

    start = {k: v for k, v in state.items() if not k.startswith("classifier.")}
    start["conv_stem.weight"] = conv.fold_rgb_stem(start["conv_stem.weight"])
    path = tmp_path / "lite0.safetensors"
    save_file({k: v.contiguous() for k, v in start.items()}, str(path))
    trainer = Trainer(TrainConfig(backbone="efficientnet", init=str(path)), tmp_path / "run", log=lambda _: None)
    assert trainer._init_weights is not None and trainer._init_weights["fresh"] == [
        "classifier.bias",
        "classifier.weight",
    ]
    assert trainer.preprocessor.to_dict()["size"] == [96, 96] and trainer.preprocessor.mean == (0.5,)
    own = trainer.model.state_dict()
    assert all(torch.equal(own[k], v) for k, v in start.items())


# ------------------------------------------------------------------------------------- the hybrid-ViT start


def test_hybrid_vit_start_joins_the_bundled_mobilenetv2_and_vit_and_loads_strictly(tmp_path, fer_faces, repo_script):
    """tools/hybrid_vit_start.py: every tensor is the bundled mobilenetv2's (tokeniser) or vit's (transformer) but
    the new projection; the file loads through --init's strict loader; the tokeniser computes the mobilenetv2's own
    stride-16 features on real faces; the metadata name both sources by sha256."""
    from emotionkit.pretrained import build_backbone, resolve_pretrained

    tool = repo_script("tools/hybrid_vit_start.py")
    state, meta = tool.compose("mobilenetv2", "vit", seed=0)
    mnv2_source, vit_source = resolve_pretrained("mobilenetv2"), resolve_pretrained("vit")
    mnv2_state, vit_state = mnv2_source.state_dict(), vit_source.state_dict()
    for key, tensor in state.items():
        if key.startswith("patch_embed.proj."):
            continue
        source = mnv2_state[key.removeprefix("patch_embed.")] if key.startswith("patch_embed.") else vit_state[key]
        assert torch.equal(tensor, source.float()), key
    assert meta["source_sha256"] == f"{mnv2_source.sha256} + {vit_source.sha256}"
    path = tmp_path / "hybrid.safetensors"
    save_file(state, str(path), metadata=meta)
    hybrid = build_backbone("vit", tool.HYBRID_CONFIG).eval()
    info = load_init_weights(hybrid, path, backbone="vit")
    assert info["fresh"] == [] and info["metadata"]["converted_by"] == "tools/hybrid_vit_start.py"
    mnv2 = build_backbone("mobilenetv2", mnv2_source.config["backbone_config"], num_classes=mnv2_source.num_outputs)
    mnv2 = mnv2.eval()
    mnv2.load_state_dict({k: v.float() for k, v in mnv2_state.items()})
    faces = (_faces3(fer_faces, 96) - 0.449) / 0.226
    with torch.no_grad():
        expected = mnv2.blocks[:5](mnv2.bn1(mnv2.conv_stem(faces)))
        stem = hybrid.patch_embed
        np.testing.assert_array_equal(stem.blocks(stem.bn1(stem.conv_stem(faces))).numpy(), expected.numpy())
        assert hybrid(faces).shape == (8, 7)


def test_hybrid_vit_start_refuses_a_vit_of_another_shape(repo_script, monkeypatch):
    tool = repo_script("tools/hybrid_vit_start.py")
    monkeypatch.setitem(tool.HYBRID_CONFIG, "depth", 7)  # one layer more than the bundled vit has
    with pytest.raises(SystemExit, match="blocks.6.*'vit' has blocks.6.* absent"):
        tool.compose("mobilenetv2", "vit", seed=0)
