"""The layers: the inference core under the recognizer, weights metadata resolved once."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
import torch

from emotionkit import EmotionRecognizer, FacePreprocessor, build_backbone
from emotionkit.inference import InferenceModel, TorchRuntime
from emotionkit.pretrained import bundled_models, resolve_pretrained
from emotionkit.registry import load_plugin
from emotionkit.weights import WEIGHTS_NAME, sha256sum

BUNDLED = sorted(bundled_models())


@pytest.mark.parametrize("name", BUNDLED or [pytest.param("none", marks=pytest.mark.skip(reason="no bundled weights"))])
def test_bundled_weights_record_their_checksum_once_and_it_is_the_files(name):
    weights = load_plugin("backbones", name).weights[0]
    # The spec carries no hard-coded copy: it reads config.json's record, which must be the file's digest.
    assert weights.sha256 == weights.config()["weights_sha256"] == sha256sum(weights.path / WEIGHTS_NAME)


@pytest.mark.parametrize("name", BUNDLED[:1] or [pytest.param("none", marks=pytest.mark.skip(reason="no weights"))])
def test_from_pretrained_keeps_what_it_resolved(name, model_dir):
    rec = EmotionRecognizer.from_pretrained(name, detector="none")
    spec = load_plugin("backbones", name)
    assert rec.pretrained_model is not None and rec.pretrained_model.spec is spec
    assert rec.inference.spec is spec and rec.pretrained_model.weights is spec.weights[0]
    assert rec.pretrained_model.path == spec.weights[0].path
    saved = EmotionRecognizer.from_pretrained(model_dir, detector="none")
    assert saved.pretrained_model is not None and saved.pretrained_model.weights is None
    assert saved.inference.spec is load_plugin("backbones", "cnn")  # the backbone config.json names
    assert EmotionRecognizer(build_backbone("cnn"), FacePreprocessor()).pretrained_model is None


def test_resolve_pretrained_reads_a_directory_once(model_dir):
    resolved = resolve_pretrained(model_dir)
    assert resolved.config["backbone"] == "cnn" and resolved.sha256 == sha256sum(model_dir / WEIGHTS_NAME)
    state = resolved.state_dict()
    model = build_backbone(resolved.backbone_spec(), resolved.config["backbone_config"])
    model.load_state_dict(state)  # build_backbone takes the resolved spec as well as a name


def test_the_recognizer_is_a_facade_over_its_core(model_dir, fer_faces):
    rec = EmotionRecognizer.from_pretrained(model_dir, detector="none", runtime="torch")
    core = rec.inference
    assert isinstance(core, InferenceModel) and isinstance(core.runtime, TorchRuntime) and rec.runtime == "torch"
    assert rec.model is core.model and rec.preprocessor is core.preprocessor and rec.labels == core.labels
    x = core.preprocessor.faces(fer_faces[:8])
    expected = torch.softmax(core.logits(x) / core.temperature, dim=1).numpy()
    np.testing.assert_allclose(core.probabilities(x), expected, atol=1e-7, rtol=0)
    np.testing.assert_array_equal(rec.predict_proba(fer_faces[:8]), core.probabilities(x))
    prepared = core.prepare(x)
    assert prepared.is_contiguous(memory_format=torch.channels_last)  # the CPU convnet's layout, made in one place
    assert core.logits(x[:0]).shape == (0, len(core.labels))


def test_face_detector_is_a_public_accessor_that_does_not_mutate(model_dir, sample_photo):
    rec = EmotionRecognizer.from_pretrained(model_dir, detector=None)
    assert rec.detector is None
    whole = rec.face_detector
    assert rec.face_detector is whole and rec.detector is None  # reading it changes nothing
    assert len(rec.predict(sample_photo)) == 1 and rec.detector is None


# --- the import graph of src/ ------------------------------------------------------------------------------------
SRC = Path(__file__).resolve().parents[1] / "src"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the emotionkit modules it imports, counting every import statement.

    Imports inside functions and under ``TYPE_CHECKING`` count too: a lazy import still says
    which module needs which. ``from package import name`` is an arrow to the submodule when
    ``name`` is one, else to the package.
    """
    files = {_module_name(p): p for p in (SRC / "emotionkit").rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                for alias in node.names:
                    sub = f"{module}.{alias.name}"
                    targets.add(sub if sub in files else module)
        graph[name] = {t for t in targets if t in files and t != name}
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def test_the_import_graph_of_src_has_no_circle():
    graph = import_graph()
    assert "emotionkit.recognizer" in graph and "emotionkit.inference" in graph["emotionkit.recognizer"]
    assert import_cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]  # the detector itself finds one
    assert import_cycles(graph) == [], "import circles in src/ (see docs/architecture.md for the layers)"


#: Modules under the recognizer: they use the inference core, never the façade above them.
UNDER_THE_RECOGNIZER = (
    "emotionkit.inference",
    "emotionkit.pretrained",
    "emotionkit.explainers",
    "emotionkit.explainers.gradcam",
    "emotionkit.explainers.attention",
    "emotionkit.export",
    "emotionkit.photos",
    "emotionkit.video.stream",
    "emotionkit.keras._core",
    "emotionkit.keras._transfer",
    "emotionkit.keras.builders",
)


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for w in graph[todo.pop()] - seen:
            seen.add(w)
            todo.append(w)
    return seen


@pytest.mark.parametrize("module", UNDER_THE_RECOGNIZER)
def test_lower_floors_do_not_reach_up_to_the_recognizer(module):
    graph = import_graph()
    assert "emotionkit.recognizer" not in _reachable(graph, module)
    assert "emotionkit" not in _reachable(graph, module)  # the package's public face is the top floor


def test_the_inference_core_stands_on_the_bottom_floor_only():
    allowed = {"emotionkit.exceptions", "emotionkit.types", "emotionkit.interfaces", "emotionkit.preprocessing"}
    allowed |= {"emotionkit.fusion", "emotionkit.weights", "emotionkit._roi", "emotionkit.io", "emotionkit.devices"}
    allowed |= {"emotionkit.heads"}  # the output-head layout: exceptions and torch only
    reached = _reachable(import_graph(), "emotionkit.inference")
    assert reached <= allowed, sorted(reached - allowed)


# --- sizes: one job per function, a thin façade -------------------------------------------------------------------
LONGEST_FUNCTION = 100  # lines, docstring included
LONGEST_RECOGNIZER = 450


def long_functions(root: Path, limit: int) -> list[str]:
    """``path:line name (N lines)`` of every function or method under ``root`` longer than ``limit`` lines."""
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > limit:
                    found.append(f"{path.relative_to(root)}:{node.lineno} {node.name} ({length} lines)")
    return found


def test_no_function_in_src_is_over_100_lines(tmp_path):
    body = "\n".join(f"    x = {i}" for i in range(LONGEST_FUNCTION))
    (tmp_path / "m.py").write_text(f"def long():\n{body}\n\n\ndef short():\n    pass\n")
    assert long_functions(tmp_path, LONGEST_FUNCTION) == ["m.py:1 long (101 lines)"]  # the scan itself finds one
    assert long_functions(SRC, LONGEST_FUNCTION) == [], "split these by job (issue 21)"


def test_the_recognizer_stays_a_thin_facade():
    lines = len((SRC / "emotionkit" / "recognizer.py").read_text(encoding="utf-8").splitlines())
    assert lines <= LONGEST_RECOGNIZER, f"recognizer.py has {lines} lines: move a job to a lower floor"


def test_train_flags_take_their_defaults_from_train_config():
    import argparse
    import dataclasses

    from emotionkit.commands.train import CONFIG_FLAGS, add_parser, train_config
    from emotionkit.training.config import TrainConfig

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    config = train_config(parser.parse_args(["train", "--out", "run"]))
    # Every field the command line does not set another way keeps TrainConfig's default; --tta is off by default.
    assert config == dataclasses.replace(TrainConfig(), tta_flip=False)
    assert set(CONFIG_FLAGS) <= {f.name for f in dataclasses.fields(TrainConfig)}
    given = parser.parse_args(
        ["train", "--out", "run", "--optimizer", "adam", "--early-stopping", "3", "--no-progress"]
    )
    assert (train_config(given).optimizer, train_config(given).early_stopping_patience) == ("adam", 3)
    assert train_config(given).progress is False
    with pytest.raises(SystemExit):  # a Literal field's choices come with it
        parser.parse_args(["train", "--out", "run", "--schedule", "linear"])
