"""Export a recognizer's backbone to ONNX, and run it with onnxruntime.

The exported graph maps ``(batch, C, H, W)`` float32 faces, preprocessed exactly as
:class:`~emotionkit.preprocessing.FacePreprocessor` does, to ``(batch, classes)``
logits; the batch axis is dynamic. Everything needed to use the file without
emotionkit is stored in the model's ``metadata_props`` (as JSON strings):
``emotionkit_preprocessor``, ``emotionkit_labels``, ``emotionkit_temperature``, ``emotionkit_heads`` (extra
output heads after the labels' columns, :mod:`emotionkit.heads`),
``emotionkit_backbone``, ``emotionkit_backbone_config``, ``emotionkit_weights_digest``
(:func:`weights_digest` of the exported weights), ``emotionkit_flip_tta``.
Probabilities are ``softmax(logits / temperature)``; where ``emotionkit_flip_tta`` is true, the model was
calibrated and scored on the mean of each face's logits and its mirror image's (run the batch with its
horizontally flipped copy and average; emotionkit's runtimes do).

:func:`quantize_onnx` turns an export into an int8 one (static quantization calibrated on
real faces; ``emotionkit_quantization`` in its metadata says how), which onnxruntime runs
2-3x faster on CPUs with AVX-512 VNNI or AVX2 (``benchmarks/speed.py``).

Needs the ``onnx`` extra: ``pip install "emotionkit[onnx]"``.
"""

from __future__ import annotations

import copy
import io
import json
import os
import warnings
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from .exceptions import MissingDependencyError
from .heads import heads_to_dict
from .inference import HasInference, InferenceModel, inference_of

__all__ = [
    "export_onnx",
    "quantize_onnx",
    "read_onnx_metadata",
    "weights_digest",
    "OnnxBackbone",
    "attach_onnx",
    "ONNX_NAME",
    "INPUT_NAME",
    "OUTPUT_NAME",
]

#: File name :func:`attach_onnx` looks for in a model directory.
ONNX_NAME = "model.onnx"
INPUT_NAME = "faces"
OUTPUT_NAME = "logits"
_PREFIX = "emotionkit_"
_INSTALL = 'pip install "emotionkit[onnx]"'
_Model = TypeVar("_Model", bound="InferenceModel | HasInference")


def _require(module: str, purpose: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{purpose} needs the {module!r} package, which is not installed: {_INSTALL}"
        ) from exc


def cpu_session(
    model: str | bytes, threads: int, *, allow_spinning: bool = False, purpose: str = 'runtime="onnx"'
) -> Any:
    """An onnxruntime CPU session as emotionkit runs its graphs: sequential, all optimisations, no spinning by default.

    Parameters
    ----------
    model : str or bytes
        An ``.onnx`` path or the serialised model.
    threads : int
        Intra-op threads.
    allow_spinning : bool, default False
        Let the threads busy-wait for the next call (they would take the cores the other runtime of
        the photo pipeline needs, see :class:`OnnxBackbone`).
    purpose : str
        What needs onnxruntime, for the error when it is missing.

    Returns
    -------
    onnxruntime.InferenceSession

    Raises
    ------
    MissingDependencyError
        onnxruntime is not installed.
    """
    ort = _require("onnxruntime", purpose)
    options = ort.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if allow_spinning else "0")
    options.intra_op_num_threads = int(threads)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])


def _metadata(core: InferenceModel) -> dict[str, str]:
    from ._version import __version__

    values: dict[str, Any] = {
        "version": __version__,
        "backbone": core.backbone_name,
        "backbone_config": core.backbone_config,
        "labels": list(core.labels),
        "temperature": core.temperature,
        "flip_tta": core.flip_tta,
        "heads": heads_to_dict(core.heads),
        "preprocessor": core.preprocessor.to_dict(),
        "weights_digest": weights_digest(core.model),
    }
    return {_PREFIX + k: json.dumps(v) for k, v in values.items()}


def weights_digest(model: torch.nn.Module) -> str:
    """Return a sha256 of a model's float32 state (names and values), to tell whether an export is current."""
    import hashlib

    digest = hashlib.sha256()
    for name, value in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(value.detach().float().contiguous().cpu().numpy().tobytes())
    return digest.hexdigest()


def _torch_export(model: torch.nn.Module, example: torch.Tensor, opset: int, dynamo: bool) -> bytes:
    """Export to ONNX bytes with a dynamic batch axis."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of torch.export, but it is ~10x faster to run here,
        # needs no onnxscript, and gives the same numbers (tests/test_export.py checks parity).
        warnings.simplefilter("ignore")
        if dynamo:
            program = torch.onnx.export(
                model,
                (example,),
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_shapes={"x": {0: torch.export.Dim("batch", min=1)}},
                opset_version=max(opset, 18),
                dynamo=True,
            )
            import tempfile

            with tempfile.TemporaryDirectory() as tmp:
                program.save(Path(tmp) / ONNX_NAME)  # type: ignore[union-attr]
                return (Path(tmp) / ONNX_NAME).read_bytes()
        else:
            torch.onnx.export(
                model,
                (example,),
                buffer,  # type: ignore[arg-type]
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                opset_version=opset,
                do_constant_folding=True,
                dynamo=False,
            )
    return buffer.getvalue()


def export_onnx(
    recognizer: InferenceModel | HasInference,
    out: str | os.PathLike | None = None,
    *,
    opset: int = 17,
    exporter: str = "auto",
) -> bytes:
    """Export a recognizer's backbone to ONNX with a dynamic batch axis and self-describing metadata.

    Parameters
    ----------
    recognizer : EmotionRecognizer or InferenceModel
        Its backbone, preprocessing, labels and temperature are exported.
    out : str or os.PathLike, optional
        Where to write the ``.onnx`` file (parent folders are created); ``None`` only returns the bytes.
    opset : int, default 17
        ONNX opset of the TorchScript exporter (the torch.export one uses at least 18).
    exporter : {"auto", "torchscript", "dynamo"}, default "auto"
        ``"auto"`` uses torch's TorchScript exporter and falls back to torch.export
        (``dynamo=True``) where that one is missing or fails.

    Returns
    -------
    bytes
        The serialized ONNX model (also written to ``out`` when given).

    Raises
    ------
    MissingDependencyError
        ``onnx`` is not installed (``pip install "emotionkit[onnx]"``).
    ValueError
        An unknown ``exporter``.

    Examples
    --------
    >>> from emotionkit.recognizer import EmotionRecognizer, build_backbone
    >>> from emotionkit.preprocessing import FacePreprocessor
    >>> rec = EmotionRecognizer(build_backbone("cnn"), FacePreprocessor(), backbone_name="cnn")
    >>> meta = read_onnx_metadata(export_onnx(rec))
    >>> meta["labels"][:2], meta["preprocessor"]["size"]
    (['angry', 'disgust'], [48, 48])
    """
    if exporter not in ("auto", "torchscript", "dynamo"):
        raise ValueError(f"exporter must be 'auto', 'torchscript' or 'dynamo', got {exporter!r}.")
    onnx = _require("onnx", "ONNX export")
    core = inference_of(recognizer)
    model = copy.deepcopy(core.model).float().cpu().to(memory_format=torch.contiguous_format).eval()
    height, width = core.preprocessor.size  # type: ignore[misc]
    example = torch.zeros((2, core.preprocessor.channels, height, width))
    if exporter == "dynamo":
        data = _torch_export(model, example, opset, dynamo=True)
    else:
        try:
            data = _torch_export(model, example, opset, dynamo=False)
        except Exception:
            if exporter == "torchscript":
                raise
            data = _torch_export(model, example, opset, dynamo=True)
    proto = onnx.load_from_string(data)
    for key, value in _metadata(core).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "emotionkit"
    onnx.checker.check_model(proto)
    data = proto.SerializeToString()
    if out is not None:
        path = Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return data


def quantize_onnx(
    model: str | os.PathLike | bytes,
    calibration: np.ndarray | torch.Tensor,
    out: str | os.PathLike | None = None,
    *,
    batch_size: int = 64,
) -> bytes:
    """Quantize an exported model to int8 with onnxruntime's static quantization.

    Weights are int8 per output channel, activations uint8 with ranges calibrated (min-max)
    on ``calibration``, in QDQ format; the emotionkit metadata is kept and
    ``emotionkit_quantization`` is added. Check the result on faces the calibration did not
    see (``emotionkit export --int8`` does, on FER-2013 validation faces).

    Parameters
    ----------
    model : str, os.PathLike or bytes
        A float32 model written by :func:`export_onnx` (path or bytes).
    calibration : numpy.ndarray or torch.Tensor
        ``(N, C, H, W)`` float32 faces *preprocessed* as the model expects
        (``recognizer.preprocessor.faces(crops)``); a few hundred real faces suffice.
    out : str or os.PathLike, optional
        Where to write the quantized ``.onnx``; ``None`` only returns the bytes.
    batch_size : int, default 64
        Calibration batch size.

    Returns
    -------
    bytes
        The quantized model.

    Raises
    ------
    MissingDependencyError
        onnx or onnxruntime is not installed (``pip install "emotionkit[onnx]"``).
    ValueError
        ``calibration`` is not a non-empty ``(N, C, H, W)`` array matching the model's input,
        or ``model`` is already quantized.
    """
    onnx = _require("onnx", "int8 quantization")
    _require("onnxruntime", "int8 quantization")
    data = model if isinstance(model, bytes) else Path(model).read_bytes()
    proto = onnx.load_from_string(data)
    meta = read_onnx_metadata(data)
    if "quantization" in meta:
        raise ValueError(
            f"This model is already quantized ({meta['quantization']['scheme']}); quantize the float export."
        )
    faces = _calibration_faces(calibration, meta.get("preprocessor", {}))
    result = _quantize_static(onnx, data, faces, proto.graph.input[0].name, batch_size)
    del result.metadata_props[:]
    for p in proto.metadata_props:
        entry = result.metadata_props.add()
        entry.key, entry.value = p.key, p.value
    entry = result.metadata_props.add()
    entry.key = _PREFIX + "quantization"
    entry.value = json.dumps(
        {
            "scheme": "int8 static (onnxruntime QDQ): per-channel int8 weights, uint8 activations, min-max calibration",
            "calibration_faces": int(faces.shape[0]),
        }
    )
    result.producer_name = "emotionkit"
    out_bytes: bytes = result.SerializeToString()
    if out is not None:
        path = Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(out_bytes)
    return out_bytes


def _calibration_faces(calibration: np.ndarray | torch.Tensor, preprocessor: dict[str, Any]) -> np.ndarray:
    """Calibration faces as contiguous float32 ``(N, C, H, W)``, checked against the model's preprocessing."""
    faces = calibration.detach().cpu().numpy() if isinstance(calibration, torch.Tensor) else np.asarray(calibration)
    expected = (preprocessor.get("channels"), *preprocessor.get("size", (None, None)))
    if faces.ndim != 4 or faces.shape[0] == 0 or (None not in expected and tuple(faces.shape[1:]) != expected):
        raise ValueError(
            f"calibration must be preprocessed faces of shape (N, {expected[0]}, {expected[1]}, {expected[2]}) with N >= 1 "
            f"(recognizer.preprocessor.faces(crops)); got an array of shape {faces.shape}."
        )
    return np.ascontiguousarray(faces, dtype=np.float32)


def _quantize_static(onnx: Any, data: bytes, faces: np.ndarray, input_name: str, batch_size: int) -> Any:
    """Run onnxruntime's pre-processing and static QDQ quantization on a float model; return the int8 proto."""
    import tempfile

    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class _CalibrationBatches(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self._batches = iter(
                [{input_name: faces[i : i + batch_size]} for i in range(0, faces.shape[0], batch_size)]
            )

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._batches, None)

    with tempfile.TemporaryDirectory() as tmp:
        source, prepared, quantized = Path(tmp) / "float.onnx", Path(tmp) / "prepared.onnx", Path(tmp) / "int8.onnx"
        source.write_bytes(data)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # onnxruntime's advice to pre-process: done just above
            quant_pre_process(str(source), str(prepared))
            quantize_static(
                str(prepared),
                str(quantized),
                _CalibrationBatches(),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
            )
        return onnx.load(str(quantized))


def read_onnx_metadata(model: str | os.PathLike | bytes) -> dict[str, Any]:
    """Read the emotionkit metadata of an exported model (path or bytes), JSON-decoded, prefix dropped.

    Raises
    ------
    MissingDependencyError
        ``onnx`` is not installed.
    """
    onnx = _require("onnx", "Reading ONNX metadata")
    proto = (
        onnx.load_from_string(model)
        if isinstance(model, bytes)
        else onnx.load(os.fspath(model), load_external_data=False)
    )
    return {p.key[len(_PREFIX) :]: json.loads(p.value) for p in proto.metadata_props if p.key.startswith(_PREFIX)}


class OnnxBackbone:
    """An onnxruntime session that maps preprocessed faces to logits like the torch backbone does.

    A logits runtime (:class:`~emotionkit.inference.LogitsRuntime`, ``name == "onnx"``) that
    :meth:`InferenceModel.use_runtime <emotionkit.inference.InferenceModel.use_runtime>` installs.

    Parameters
    ----------
    model : str, os.PathLike or bytes
        An ``.onnx`` file written by :func:`export_onnx`, or its bytes.
    threads : int, optional
        onnxruntime's intra-op threads (default: ``torch.get_num_threads()``, so both
        runtimes use the same cores).
    allow_spinning : bool, default False
        Let onnxruntime's threads busy-wait for the next call. Off by default: the classifier
        shares the process with the torch face detector, and spinning threads took the cores
        from it (end to end on the sample photo: 74 ms with spinning, vs 31 ms for torch alone,
        in ``benchmarks/speed.py``).

    Raises
    ------
    MissingDependencyError
        onnxruntime is not installed (``pip install "emotionkit[onnx]"``).
    """

    #: The runtime's name (what ``EmotionRecognizer.runtime`` reports).
    name = "onnx"

    def __init__(
        self, model: str | os.PathLike | bytes, *, threads: int | None = None, allow_spinning: bool = False
    ) -> None:
        source = model if isinstance(model, bytes) else os.fspath(model)
        #: Where the graph came from: a file path, or ``"<memory>"``.
        self.source = "<memory>" if isinstance(model, bytes) else os.fspath(model)
        self.session = cpu_session(source, int(threads or torch.get_num_threads()), allow_spinning=allow_spinning)
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``(N, classes)`` float32 logits on the CPU for ``(N, C, H, W)`` faces."""
        array = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
        return torch.from_numpy(self.session.run(None, {self.input_name: array})[0])


def attach_onnx(recognizer: _Model, source: str | os.PathLike | bytes | None = None) -> _Model:
    """Make ``recognizer.logits`` run on onnxruntime (``runtime="onnx"``); the torch model stays for explanations.

    Parameters
    ----------
    recognizer : EmotionRecognizer or InferenceModel
        Modified in place (its core's runtime becomes an :class:`OnnxBackbone`) and returned.
    source : str, os.PathLike or bytes, optional
        An exported ``.onnx`` file (or its bytes; float32 or int8 from :func:`quantize_onnx`), which
        must come from the recognizer's own weights; or a model directory: its ``model.onnx`` is used
        when it was exported from the same weights. Otherwise (and for ``None``) the backbone is
        exported in memory, which takes about a second.

    Returns
    -------
    EmotionRecognizer or InferenceModel
        ``recognizer``, with ``runtime == "onnx"``.

    Raises
    ------
    MissingDependencyError
        onnxruntime (or, to export, onnx) is not installed: ``pip install "emotionkit[onnx]"``.
    ValueError
        ``source`` is an ONNX file exported from other weights.
    """
    _require("onnxruntime", 'runtime="onnx"')
    core = inference_of(recognizer)
    model: str | os.PathLike | bytes | None = source
    digest = weights_digest(core.model)
    if source is not None and not isinstance(source, bytes) and Path(source).is_dir():
        candidate = Path(source) / ONNX_NAME
        model = None
        if candidate.is_file() and read_onnx_metadata(candidate).get("weights_digest") == digest:
            model = candidate
    elif source is not None:
        exported_from = read_onnx_metadata(source).get("weights_digest")
        if exported_from is not None and exported_from != digest:
            where = "<bytes>" if isinstance(source, bytes) else repr(os.fspath(source))
            raise ValueError(
                f"The ONNX model {where} was exported from other weights than this recognizer's "
                f"(weights digest {exported_from[:12]}... vs {digest[:12]}...): its answers would not be this "
                "model's. Export this recognizer (emotionkit export, or export_onnx) and use that file."
            )
    core.use_runtime(OnnxBackbone(export_onnx(core) if model is None else model))
    return recognizer
