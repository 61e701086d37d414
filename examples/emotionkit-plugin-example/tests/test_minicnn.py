"""The plugin's own tests: emotionkit's conformance checks, and the entry point as installed."""

from __future__ import annotations

from emotionkit_plugin_example import SPEC

from emotionkit.registry import list_plugins, load_plugin
from emotionkit.testing import check_backbone


def test_conformance():
    # Shape, num_classes, determinism, batch independence, gradients, Grad-CAM layer,
    # safetensors round trip, use inside EmotionRecognizer, save/load through the registry.
    passed = check_backbone(SPEC)
    assert "recognizer" in passed


def test_entry_point_finds_the_spec():
    info = list_plugins("backbones")["minicnn"]
    assert info.distribution == "emotionkit-plugin-example"
    assert load_plugin("backbones", "minicnn") is SPEC
