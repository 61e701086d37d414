"""emotionkit.testing.check_backbone: passes the built-ins, and names the broken promise of a bad backbone."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from emotionkit.exceptions import EmotionKitError
from emotionkit.interfaces import BackboneSpec
from emotionkit.testing import CHECKS, BackboneCheckError, check_backbone, parametrize_with_checks


# The big two run smaller members of their family (same code paths, same contract) to keep the suite fast.
@pytest.mark.parametrize(
    ("name", "config"),
    [
        ("cnn", None),
        ("resnet", None),
        ("mobilenetv2", {"variant": "mobilenetv2_050"}),
        ("efficientnet", None),
        ("vit", {"depth": 2}),
        ("vit", {"depth": 2, "stem": "conv"}),
        ("vit", {"depth": 2, "stem": "mobilenetv2", "patch_size": 16}),  # 3x3 tokens at 48 px
    ],
    ids=["cnn", "resnet", "mobilenetv2", "efficientnet", "vit", "vit-conv-stem", "vit-mobilenetv2-stem"],
)
def test_builtin_backbones_conform(name, config):
    passed = check_backbone(name, config=config)
    assert passed == [c for c in CHECKS if c != "weights"] or passed == list(CHECKS)


class Small(nn.Module):
    """A correct little backbone the failure cases below break one promise at a time."""

    def __init__(self, num_classes: int = 7, in_channels: int = 1, image_size: int = 16) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 4, 3, padding=1)
        self.act = nn.ReLU()
        self.head = nn.Linear(4, num_classes)

    def forward(self, x):
        return self.head(self.act(self.conv(x)).mean((2, 3)))


def spec_of(cls=Small, **overrides) -> BackboneSpec:
    fields = {
        "name": "small",
        "build": lambda num_classes=7, **kw: cls(num_classes=num_classes, **kw),
        "default_config": {"in_channels": 1, "image_size": 16},
        "preprocessing": {"size": 16, "channels": 1},
        "target_layer": lambda m: m.act,
    }
    return BackboneSpec(**{**fields, **overrides})


def test_a_correct_unregistered_spec_passes():
    passed = check_backbone(spec_of())
    assert "recognizer" in passed and "save_pretrained" not in passed  # not registered: no from_pretrained round trip


class FixedOutputs(Small):
    def __init__(self, num_classes: int = 7, **kw) -> None:
        super().__init__(num_classes=7, **kw)  # ignores num_classes


class BatchStatistics(Small):
    def forward(self, x):
        h = self.act(self.conv(x))
        return self.head(((h - h.mean(0)) / (h.std(0, correction=0) + 1e-5)).mean((2, 3)))


class Noisy(Small):
    def forward(self, x):
        return super().forward(x) + torch.rand(x.shape[0], 1)


class UnusedParameter(Small):
    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.extra = nn.Linear(3, 3)


class HiddenBuffer(Small):
    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.register_buffer("scale", torch.rand(1) + 0.5, persistent=False)

    def forward(self, x):
        return super().forward(x) * self.scale


class NaNs(Small):
    def forward(self, x):
        return super().forward(x) * float("nan")


@pytest.mark.parametrize(
    ("spec", "check", "fragment"),
    [
        (spec_of(FixedOutputs), "num_classes", "(3, 7)"),
        (spec_of(NaNs), "output_shape", "finite"),
        (spec_of(Noisy), "determinism", "Disable dropout"),
        (spec_of(BatchStatistics), "batch_independence", "running statistics"),
        (spec_of(UnusedParameter), "gradients", "extra.weight"),
        (spec_of(HiddenBuffer), "state_dict", "buffer"),
        (spec_of(target_layer=lambda m: nn.ReLU()), "target_layer", "not a submodule"),
        (spec_of(target_layer=lambda m: m.head), "target_layer", "spatial"),
        (spec_of(target_layer=None), "spec", "target_layer is None"),
        (spec_of(preprocessing={"size": 16, "channels": 3}), "preprocessing", "in_channels=1"),
        (spec_of(preprocessing={"size": 24, "channels": 1}), "preprocessing", "image_size=16"),
        (spec_of(preprocessing={"size": 16, "channels": 1, "colour": True}), "preprocessing", "colour"),
        (spec_of(build=lambda **kw: "not a module"), "build", "str"),
    ],
    ids=[
        "num-classes",
        "nan",
        "noisy",
        "batch-statistics",
        "unused-parameter",
        "hidden-buffer",
        "foreign-target",
        "flat-target",
        "no-target",
        "channels",
        "size",
        "bad-preprocessing",
        "not-a-module",
    ],
)
def test_broken_backbones_fail_the_right_check(spec, check, fragment):
    with pytest.raises(BackboneCheckError) as excinfo:
        check_backbone(spec)
    err = excinfo.value
    assert isinstance(err, AssertionError) and isinstance(err, EmotionKitError)
    assert f"failed check {check!r}" in str(err) and fragment in str(err), str(err)


def test_bad_arguments():
    with pytest.raises(TypeError, match="BackboneSpec or a registered backbone name"):
        check_backbone(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="batch_size"):
        check_backbone("cnn", batch_size=1)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"stem": "conv", "patch_size": 6}, "power-of-two patch_size"),
        ({"stem": "hybrid"}, "Unknown stem 'hybrid'"),
        ({"stem": "conv", "pretrained": True}, "stem='patch' only"),
        ({"stem": "mobilenetv2", "patch_size": 8}, "fixed stride of 16: give patch_size=16 \\(got 8\\)"),
        ({"stem": "mobilenetv2", "patch_size": 16, "image_size": 40}, "image_size=40 must be divisible"),
        ({"stem": "mobilenetv2", "patch_size": 16, "image_size": 96, "pretrained": True}, "not stem='mobilenetv2'"),
    ],
)
def test_vit_stem_options_are_checked(config, message):
    from emotionkit.backbones.vit import build_vit

    with pytest.raises(ValueError, match=message):
        build_vit(depth=1, **config)


def test_vit_conv_stem_tokens_follow_the_patch_grid():
    from emotionkit.backbones.vit import ConvStem, build_vit

    model = build_vit(depth=1, stem="conv", patch_size=8, stem_width=8)
    assert isinstance(model.patch_embed, ConvStem)
    assert model.patch_embed.grid_size == (6, 6) and model.pos_embed.shape[1] == 36 + 1
    assert len([m for m in model.patch_embed.convs if isinstance(m, nn.Conv2d)]) == 3  # 48 -> 24 -> 12 -> 6
    tokens = model.patch_embed(torch.rand(2, 1, 48, 48))
    assert tokens.shape == (2, 36, 192)
    assert model(torch.rand(2, 1, 48, 48)).shape == (2, 7)


def test_vit_mobilenetv2_stem_is_mobilenetv2s_stride_16_part_under_its_names():
    """The hybrid's tokeniser holds timm MobileNetV2's stem and first five stages by their own names (so a trained
    MobileNetV2 copies in), down to a 6x6 grid at 96 px, with one new 1x1 projection to the token width."""
    import timm

    from emotionkit.backbones.vit import MobileNetV2Stem, build_vit

    model = build_vit(depth=1, stem="mobilenetv2", patch_size=16, image_size=96)
    stem = model.patch_embed
    assert isinstance(stem, MobileNetV2Stem) and stem.grid_size == (6, 6) and model.pos_embed.shape[1] == 36 + 1
    mnv2 = timm.create_model("mobilenetv2_100", in_chans=1, num_classes=7)
    mnv2_keys = {k for k in mnv2.state_dict() if k.startswith(("conv_stem.", "bn1.", "blocks."))}
    stem_keys = {k for k in stem.state_dict() if not k.startswith("proj.")}
    assert stem_keys == {k for k in mnv2_keys if not k.startswith(("blocks.5.", "blocks.6."))}
    assert model.patch_embed(torch.rand(2, 1, 96, 96)).shape == (2, 36, 192)
    assert model(torch.rand(2, 1, 96, 96)).shape == (2, 7)


def test_each_check_is_a_function_of_its_own_that_runs_alone():
    from emotionkit import testing

    case = testing.BackboneCase(spec_of(BatchStatistics))
    testing.check_gradients(case)  # runs without the checks before it, and passes on this backbone
    testing.check_state_dict(case)
    with pytest.raises(BackboneCheckError, match="failed check 'batch_independence'"):
        testing.check_batch_independence(case)
    assert [name for name, _ in testing.backbone_checks(case)] == [
        c for c in CHECKS if c not in ("save_pretrained", "weights")
    ]
    assert all(callable(getattr(testing, f"check_{name}")) for name in CHECKS)
    broken = testing.BackboneCase(spec_of(build=lambda **kw: "not a module"))
    with pytest.raises(BackboneCheckError, match="failed check 'build'"):
        testing.check_output_shape(broken)  # what a later check needs fails as the check that makes it


def test_parametrize_with_checks_gives_one_test_id_per_check_and_marks_known_failures():
    mark = parametrize_with_checks(
        [spec_of(BatchStatistics)], expected_failures={"batch_independence": "batch statistics on purpose"}
    )
    params = mark.args[1]
    assert [p.id for p in params][:3] == ["small-spec", "small-preprocessing", "small-build"]
    xfails = {p.id: p.marks[0].kwargs for p in params if p.marks}
    assert xfails == {"small-batch_independence": {"reason": "batch statistics on purpose", "strict": True}}


def _small_failures(spec: BackboneSpec) -> dict[str, str]:
    return {"batch_independence": "normalises with batch statistics"} if spec.name == "batchstats" else {}


@parametrize_with_checks([spec_of(), spec_of(BatchStatistics, name="batchstats")], expected_failures=_small_failures)
def test_small_backbones_one_check_at_a_time(case, check):
    check(case)  # pytest shows small-spec, ..., batchstats-batch_independence (xfail, strict)
