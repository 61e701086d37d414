"""Convert a YuNet checkpoint of ShiqiYu/libfacedetection.train into emotionkit's bundled detector weights.

Run once by a maintainer (nothing downloads at run time)::

    git --git-dir=REPO.git show 0047ac24afb1a50a0c6105001c89d1b5b805dbf1:weights/yunet_n.pth > /tmp/yunet_n.pth
    git --git-dir=REPO.git show 0047ac24afb1a50a0c6105001c89d1b5b805dbf1:onnx/yunet_n_dynamic.onnx > /tmp/yunet_n.onnx
    python tools/convert_yunet.py /tmp/yunet_n.pth --check-onnx /tmp/yunet_n.onnx

It reads the checkpoint's state dict with ``torch.load(weights_only=True)`` (tensors only, no code runs), folds
every batch norm into the convolution before it, merges each level's four output branches into one
16-channel unit (see :mod:`emotionkit.detectors._yunet_net`), and writes
``src/emotionkit/assets/detectors/yunet/model.safetensors`` and its card. With ``--check-onnx`` it runs the
authors' own ONNX export of the same model on the bundled astronaut photo and a group photo and prints the
largest difference from our network's outputs. It prints the sha256 to put in ``detectors/yunet.py``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from emotionkit.detectors._yunet_net import YuNetNet

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "src" / "emotionkit" / "assets" / "detectors" / "yunet"
SOURCE = {
    "repo": "https://github.com/ShiqiYu/libfacedetection.train",
    "commit": "0047ac24afb1a50a0c6105001c89d1b5b805dbf1",
    "licence": "Apache-2.0 (the repository's LICENSE: Copyright 2018-2022 OpenMMLab, 2022 Shiqi Yu)",
}
#: Stage widths and shared head unit of the two published sizes (configs/yunet_{n,s}.py of the source).
CONFIGS = {"yunet_n": ((64, 64, 64, 64, 64), True), "yunet_s": ((32, 64, 64, 64, 64), False)}
_EPS = 1e-5  # torch BatchNorm2d's default, which the checkpoints were trained with


def _fold(weight: torch.Tensor, bias: torch.Tensor, sd: dict[str, torch.Tensor], bn: str) -> tuple[torch.Tensor, ...]:
    """Fold batch norm ``bn`` (a key prefix in ``sd``) into the convolution (weight, bias) before it."""
    gain = sd[f"{bn}.weight"] / torch.sqrt(sd[f"{bn}.running_var"] + _EPS)
    return weight * gain.view(-1, 1, 1, 1), (bias - sd[f"{bn}.running_mean"]) * gain + sd[f"{bn}.bias"]


def _unit(sd: dict[str, torch.Tensor], src: str, dst: str, out: dict[str, torch.Tensor]) -> None:
    """One depthwise-separable unit with batch norm: ``src.conv1`` (1x1), ``src.conv2`` (3x3 dw), ``src.bn``."""
    out[f"{dst}.point.weight"], out[f"{dst}.point.bias"] = sd[f"{src}.conv1.weight"], sd[f"{src}.conv1.bias"]
    out[f"{dst}.depth.weight"], out[f"{dst}.depth.bias"] = _fold(
        sd[f"{src}.conv2.weight"], sd[f"{src}.conv2.bias"], sd, f"{src}.bn"
    )


def convert(sd: dict[str, torch.Tensor], n_stages: int = 5) -> dict[str, torch.Tensor]:
    """Map a libfacedetection.train YuNet state dict to :class:`YuNetNet`'s keys, batch norms folded."""
    out: dict[str, torch.Tensor] = {}
    out["stem.weight"], out["stem.bias"] = _fold(
        sd["backbone.model0.conv1.weight"], sd["backbone.model0.conv1.bias"], sd, "backbone.model0.bn1"
    )
    _unit(sd, "backbone.model0.conv2", "stem_unit", out)
    for i in range(n_stages):
        for j in (1, 2):
            _unit(sd, f"backbone.model{i + 1}.conv{j}", f"stages.{i}.{j - 1}", out)
    for level in range(3):
        _unit(sd, f"neck.lateral_convs.{level}", f"lateral.{level}", out)
        if f"bbox_head.multi_level_share_convs.{level}.0.conv1.weight" in sd:
            _unit(sd, f"bbox_head.multi_level_share_convs.{level}.0", f"shared.{level}", out)
        # Output branches without batch norm, concatenated in HEAD_CHANNELS order: cls, obj, bbox, kps.
        branches = [f"bbox_head.multi_level_{b}.{level}" for b in ("cls", "obj", "bbox", "kps")]
        for conv, name in (("conv1", "point"), ("conv2", "depth")):
            for part in ("weight", "bias"):
                out[f"heads.{level}.{name}.{part}"] = torch.cat([sd[f"{b}.{conv}.{part}"] for b in branches])
    return {k: v.float().contiguous() for k, v in out.items()}


def _photos() -> list[np.ndarray]:
    from PIL import Image

    sys.path.insert(0, str(REPO / "benchmarks"))
    from _photos import photos  # type: ignore[import-not-found]

    pics = {p.name: p.image for p in photos()}
    astronaut = np.asarray(Image.open(REPO / "src" / "emotionkit" / "assets" / "astronaut.jpg").convert("RGB"))
    return [astronaut, pics["group_480p"]]


def check_onnx(net: YuNetNet, onnx_path: Path) -> float:
    """Largest absolute difference between our network and the authors' ONNX export on two real photos."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    worst = 0.0
    for rgb in _photos():
        h, w = (s // 32 * 32 for s in rgb.shape[:2])
        bgr = np.ascontiguousarray(rgb[:h, :w, ::-1].transpose(2, 0, 1)[None], dtype=np.float32)
        theirs = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"input": bgr})))
        with torch.inference_mode():
            ours = net(torch.from_numpy(bgr))
        for stride, maps in zip((8, 16, 32), ours):
            flat = maps[0].permute(1, 2, 0).reshape(-1, maps.shape[1]).numpy()
            ref = np.concatenate([theirs[f"{k}_{stride}"][0] for k in ("cls", "obj", "bbox", "kps")], axis=1)
            # The export applies the sigmoid to score and objectness; our network leaves it to the decoder.
            diff = np.abs(np.concatenate([_sigmoid(flat[:, :2]), flat[:, 2:]], 1) - ref)
            worst = max(worst, float(diff.max()))
            print(f"  {rgb.shape[1]}x{rgb.shape[0]} stride {stride}: max |ours - onnx| = {diff.max():.2e}")
    return worst


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def write_card(name: str, pth: Path, weights: Path, sha: str, n_params: int, onnx_diff: float | None) -> None:
    """Write ``card.md`` and ``card.json`` beside the weights."""
    meta = {
        "model": name,
        "source": {**SOURCE, "path": f"weights/{pth.name}", "sha256_of_source_file": _sha(pth)},
        "weights": weights.name,
        "sha256": sha,
        "parameters": n_params,
        "bytes": weights.stat().st_size,
        "training_data": "WIDER FACE (research dataset; see http://shuoyang1213.me/WIDERFACE/)",
        "onnx_check_max_abs_diff": onnx_diff,
    }
    (weights.parent / "card.json").write_text(json.dumps(meta, indent=1) + "\n")
    diff = f"{onnx_diff:.1e}" if onnx_diff is not None else "not run"
    (weights.parent / "card.md").write_text(
        f"""# `yunet` face detector: YuNet ({name.replace("yunet_", "").upper()}) with five landmarks

- Source: {SOURCE["repo"]} at commit `{SOURCE["commit"]}`, file `weights/{pth.name}` (sha256 `{meta["source"]["sha256_of_source_file"]}`).
- Licence of the weights' origin: {SOURCE["licence"]}. emotionkit's network code, priors and decoding are its own
  (`emotionkit/detectors/_yunet_net.py`, `emotionkit/detectors/yunet.py`); no code of the source repository is copied.
- Paper: W. Wu, H. Peng, S. Yu, "YuNet: A Tiny Millisecond-level Face Detector", Machine Intelligence Research, 2023.
- Training data: WIDER FACE (a research dataset of faces in Flickr photos, with its own terms of use); not trained or
  tuned by emotionkit.
- Conversion: `python tools/convert_yunet.py {pth.name} --check-onnx yunet_n_dynamic.onnx` folded the batch norms
  into the convolutions and stored {n_params:,} float32 parameters ({meta["bytes"]:,} bytes); the authors' ONNX export of
  the same model gives the same outputs on two real photos (largest difference {diff}).
- File: `model.safetensors`, sha256 `{sha}` (verified at every load).
- Input: BGR 0-255, sides padded to multiples of 32; outputs at strides 8, 16, 32: face score x objectness, box,
  five landmarks (eyes, nose tip, mouth corners).

Recall and cost beside MTCNN (numbers in the README and the predict guide):
`python benchmarks/detection_recall.py --fer 1200 --threads 1 --configs default "yunet default" "yunet, onnxruntime"`.
The default `min_score` (0.5) was chosen on FER-2013 Training faces:
`python benchmarks/detection_recall.py --fer 1200 --fer-usage Training --configs "yunet, scores >= 0.3" --score-sweep 0.3 0.4 0.5 0.6 0.7 0.8 0.9`.
"""
    )


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path, help="weights/yunet_n.pth (or yunet_s.pth) of the source repository")
    parser.add_argument("--check-onnx", type=Path, help="the authors' ONNX export of the same model, to compare")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    name = args.checkpoint.stem
    ckpt = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
    sd = ckpt.get("state_dict", ckpt)
    tensors = convert(sd)
    widths, shared = CONFIGS[name]
    net = YuNetNet(widths, shared).eval()
    net.load_state_dict(tensors, strict=True)
    diff = check_onnx(net, args.check_onnx) if args.check_onnx else None
    args.out.mkdir(parents=True, exist_ok=True)
    weights = args.out / "model.safetensors"
    save_file(
        tensors,
        str(weights),
        metadata={
            "model": name,
            "source_commit": SOURCE["commit"],
            "widths": json.dumps(widths),
            "shared": json.dumps(shared),
        },
    )
    sha = _sha(weights)
    write_card(name, args.checkpoint, weights, sha, sum(t.numel() for t in tensors.values()), diff)
    print(f"{weights} {weights.stat().st_size} bytes sha256 {sha}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
