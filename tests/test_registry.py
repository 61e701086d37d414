"""The entry-point registry: listing imports nothing, loading is lazy and cached, unknown names get suggestions."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from emotionkit import registry
from emotionkit.exceptions import EmotionKitError, UnknownPluginError
from emotionkit.interfaces import BackboneSpec, DetectorSpec
from emotionkit.registry import list_plugins, load_plugin

BUILTIN_BACKBONES = ["cnn", "efficientnet", "mobilenetv2", "resnet", "vit"]


def test_builtins_are_registered_through_entry_points():
    backbones = list_plugins("backbones")
    for name in BUILTIN_BACKBONES:
        info = backbones[name]
        assert info.distribution == "emotionkit"
        assert info.value == f"emotionkit.backbones.{name}:SPEC"
    detectors = list_plugins("detectors")
    assert {"mtcnn", "none"} <= set(detectors)
    assert all(detectors[n].distribution == "emotionkit" for n in ("mtcnn", "none"))


def test_listing_imports_no_plugin_and_no_torch():
    code = textwrap.dedent(
        """
        import sys
        import emotionkit
        from emotionkit.registry import list_plugins
        names = {kind: sorted(list_plugins(kind)) for kind in ("backbones", "detectors", "explainers")}
        assert "cnn" in names["backbones"], names
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "timm", "facenet_pytorch")
                       or m.startswith(("emotionkit.backbones.", "emotionkit.detectors.")))
        print(heavy)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_load_is_lazy_cached_and_typed():
    spec = load_plugin("backbones", "cnn")
    assert isinstance(spec, BackboneSpec) and spec.name == "cnn"
    assert load_plugin("backbones", "cnn") is spec
    assert isinstance(load_plugin("detectors", "none"), DetectorSpec)


def test_unknown_name_lists_choices_and_suggests():
    with pytest.raises(UnknownPluginError) as excinfo:
        load_plugin("backbones", "resnt")
    message = str(excinfo.value)
    assert isinstance(excinfo.value, EmotionKitError) and isinstance(excinfo.value, ValueError)
    assert "'resnt'" in message and "Available: cnn, efficientnet, mobilenetv2, resnet, vit" in message
    assert "Did you mean 'resnet'?" in message


def test_unknown_kind():
    with pytest.raises(UnknownPluginError, match="Allowed: backbones, detectors, explainers. Did you mean 'backbones'"):
        list_plugins("backbone")  # type: ignore[arg-type]


def test_runtime_registration(monkeypatch):
    monkeypatch.setattr(registry, "_runtime", {kind: {} for kind in registry.GROUPS})
    spec = BackboneSpec(name="mine", build=lambda **kw: None, description="runtime")
    registry.register("backbones", spec)
    assert list_plugins("backbones")["mine"].distribution == "<runtime>"
    assert load_plugin("backbones", "mine") is spec
    with pytest.raises(ValueError, match="already registered"):
        registry.register("backbones", spec)
    with pytest.raises(ValueError, match="already registered"):
        registry.register("backbones", BackboneSpec(name="cnn", build=lambda **kw: None))
    registry.register("backbones", spec, overwrite=True)
    with pytest.raises(TypeError, match="Expected a BackboneSpec"):
        registry.register("backbones", DetectorSpec(name="d", build=lambda **kw: None))
