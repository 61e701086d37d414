"""Speed of emotionkit (auto, torch, onnxruntime float32 and int8) beside the `fer` package, on the same photos and cores, in one run.

Measures, for each model (bundled weights, given model directories, or untrained models of the
four architectures when none is bundled: same architecture, same speed):

- crop classification on real FER-2013 faces (preprocessing included): faces/s at batch 1 and 64,
  and the GFLOP/s that implies (FLOPs counted by ``torch.utils.flop_counter.FlopCounterMode``);
- end to end, photo -> emotions with the MTCNN detector, on real photos of several sizes
  (``benchmarks/_photos.py``): median wall ms, CPU ms, and faces found out of the known faces;
  for the first model also with the YuNet detector (the default: onnxruntime when installed, and torch);
- the same photos through ``fer`` (Haar or MTCNN, TFLite or Keras) in its own venv
  (``benchmarks/_fer_side.py``), run as a subprocess of this run with the same thread count.

Wall times depend on what else runs on the machine: compare the ratios within one run, and the
CPU ms, which load changes less. Prints a table; ``--json`` writes everything.

Run::

    .venv/bin/python benchmarks/speed.py --json /tmp/speed.json
    .venv/bin/python benchmarks/speed.py --models cnn runs/resnet --no-fer --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _photos import WARMUP_CALLS, Photo, dump_paths, photos, timing_row  # noqa: E402

from emotionkit.preprocessing import FacePreprocessor  # noqa: E402
from emotionkit.recognizer import EmotionRecognizer, build_backbone, bundled_models  # noqa: E402
from emotionkit.registry import load_plugin  # noqa: E402

ARCHITECTURES = ("cnn", "resnet", "mobilenetv2", "vit")


def _models(requested: list[str] | None, scratch: Path) -> dict[str, str]:
    """Label -> name or directory. Untrained stand-ins (labelled '<arch> (untrained)') when nothing is bundled."""
    if requested:
        return {m: m for m in requested}
    bundled = sorted(bundled_models())
    if bundled:
        return {m: m for m in bundled}
    out = {}
    for arch in ARCHITECTURES:
        spec = load_plugin("backbones", arch)
        rec = EmotionRecognizer(
            build_backbone(arch),
            FacePreprocessor(**spec.preprocessing),
            backbone_name=arch,
            backbone_config=spec.default_config,
        )
        out[f"{arch} (untrained)"] = str(rec.save_pretrained(scratch / arch))
    return out


def _faces() -> tuple[np.ndarray, str]:
    try:
        from emotionkit.data.fer2013 import fer2013_path, read_fer2013

        return read_fer2013(fer2013_path(), usage="PublicTest", limit=64).images[:64], "FER-2013 PublicTest"
    except Exception:
        return np.random.default_rng(0).integers(0, 256, (64, 48, 48), dtype=np.uint8), "random (FER-2013 not found)"


def _calibration_faces() -> np.ndarray:
    """512 FER-2013 Training faces for int8 calibration (not the PublicTest faces that are timed)."""
    try:
        from emotionkit.data.fer2013 import fer2013_path, read_fer2013

        return read_fer2013(fer2013_path(), usage="Training", limit=512).images
    except Exception:
        return np.random.default_rng(1).integers(0, 256, (512, 48, 48), dtype=np.uint8)


def _load(where: Any, runtime: str, detector: str = "mtcnn", options: dict | None = None) -> EmotionRecognizer:
    """A recognizer on ``runtime``: auto, torch, onnx (float32), or onnx-int8 (quantized here on Training faces)."""
    if runtime != "onnx-int8":
        return EmotionRecognizer.from_pretrained(
            where,
            runtime=runtime,  # type: ignore[arg-type]
            detector=detector,
            detector_options=options,
        )
    from emotionkit.export import attach_onnx, export_onnx, quantize_onnx

    rec = EmotionRecognizer.from_pretrained(where, detector=detector, detector_options=options)
    return attach_onnx(rec, quantize_onnx(export_onnx(rec), rec.preprocessor.faces(_calibration_faces())))


def _repeat(fn, repeats: int, budget: float) -> tuple[list[float], list[float], Any]:
    for _ in range(WARMUP_CALLS):
        fn()
    walls: list[float] = []
    cpus: list[float] = []
    start = time.perf_counter()
    out = None
    while len(walls) < repeats and (not walls or time.perf_counter() - start < budget):
        c, w = time.process_time(), time.perf_counter()
        out = fn()
        walls.append((time.perf_counter() - w) * 1000)
        cpus.append((time.process_time() - c) * 1000)
    return walls, cpus, out


def _flops_per_face(rec: EmotionRecognizer) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    h, w = rec.preprocessor.size  # type: ignore[misc]
    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        rec.model(torch.zeros(1, rec.preprocessor.channels, h, w))
    return float(counter.get_total_flops())


def bench_crops(label: str, rec: EmotionRecognizer, runtime: str, faces: np.ndarray, args) -> dict[str, Any]:
    flops = _flops_per_face(rec)
    row: dict[str, Any] = {"model": label, "runtime": runtime, "mflop_per_face": flops / 1e6}
    for batch in (1, 64):
        x = faces[:batch]
        walls, _, _ = _repeat(lambda x=x: rec.predict_proba(x), max(args.repeats, 5), args.budget)
        per_s = batch / (float(np.median(walls)) / 1000)
        row[f"batch{batch}_faces_per_s"] = per_s
        row[f"batch{batch}_gflop_per_s"] = per_s * flops / 1e9
    return row


def bench_e2e(name: str, predict, pics: list[Photo], args) -> dict[str, Any]:
    rows = {}
    for p in pics:
        walls, cpus, found = _repeat(lambda p=p: predict(p.image), args.repeats, args.budget)
        rows[p.name] = timing_row(p, walls, cpus, [getattr(f, "detection", f).box for f in found])
    print(f"  {name}: " + ", ".join(f"{k} {v['wall_ms']:.0f} ms" for k, v in rows.items()), flush=True)
    return rows


def run_fer(pics: list[Photo], faces: np.ndarray, args) -> dict[str, Any]:
    python = Path(args.fer_python)
    if not python.exists():
        return {"error": f"{python} not found; see benchmarks/_fer_side.py for the venv recipe"}
    with tempfile.TemporaryDirectory() as tmp:
        paths, faces_file = Path(tmp) / "paths.json", Path(tmp) / "faces.npy"
        dump_paths(paths)
        np.save(faces_file, faces)
        cmd = [str(python), str(HERE / "_fer_side.py"), "--paths", str(paths), "--faces", str(faces_file)]
        cmd += ["--repeats", str(args.repeats), "--budget", str(args.budget), "--threads", str(args.threads)]
        cmd += ["--torch-site", sysconfig.get_paths()["purelib"]]
        if args.photos:
            cmd += ["--photos", *args.photos]
        if getattr(args, "configs", None):
            cmd += ["--configs", *args.configs]
        env = {**os.environ, "KERAS_HOME": str(Path(tmp) / "keras"), "KERAS_BACKEND": "tensorflow"}
        done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        return {"error": f"exit {done.returncode}: {done.stderr[-2000:]}"}
    data = json.loads(done.stdout.strip().splitlines()[-1])
    return data


def _cell(row: dict[str, Any]) -> str:
    return f"{row['wall_ms']:7.0f} ({row['cpu_ms']:5.0f}) {row['found']}/{row['faces']}"


def print_tables(result: dict[str, Any]) -> None:
    print(
        f"\n# emotionkit speed, {result['threads']} threads, load average {result['load_before']} -> {result['load_after']}"
    )
    print(f"# crop classification on {result['faces_source']} faces, preprocessing included")
    print(
        f"{'model':28s} {'runtime':9s} {'MFLOP/face':>10s} {'b1 faces/s':>11s} {'b64 faces/s':>12s} {'GFLOP/s@64':>11s}"
    )
    for r in result["crops"]:
        print(
            f"{r['model']:28s} {r['runtime']:9s} {r['mflop_per_face']:10.1f} {r['batch1_faces_per_s']:11.0f} "
            f"{r['batch64_faces_per_s']:12.0f} {r['batch64_gflop_per_s']:11.1f}"
        )
    for name, r in result.get("fer", {}).get("crops", {}).items():
        print(f"{name:28s} {'tf':8s} {'':>10s} {r['batch1_faces_per_s']:11.0f} {r['batch64_faces_per_s']:12.0f}")
    e2e = dict(result["e2e"])
    for name, rows in result.get("fer", {}).get("e2e", {}).items():
        e2e[name] = rows
    names = [p["name"] for p in result["photos"]]
    print("\n# end to end, photo -> emotions: median wall ms (CPU ms) faces found/known")
    print(
        f"{'configuration':44s} "
        + " ".join(f"{n + ' ' + s:>22s}" for n, s in ((p["name"], p["size"]) for p in result["photos"]))
    )
    for name, rows in e2e.items():
        if "error" in rows:
            print(f"{name:44s} error: {rows['error'][:200]}")
            continue
        print(f"{name:44s} " + " ".join(f"{_cell(rows[n]):>22s}" if n in rows else f"{'-':>22s}" for n in names))
    base = result.get("default_config")
    if base and base in e2e:
        print(f"\n# ratios (wall): how many times faster {base!r} is")
        for name, rows in e2e.items():
            if name == base or "error" in rows:
                continue
            ratios = [rows[n]["wall_ms"] / e2e[base][n]["wall_ms"] for n in names if n in rows and n in e2e[base]]
            print(f"{'vs ' + name:44s} " + " ".join(f"{r:22.2f}" for r in ratios))
    # The issue-18 targets: >= 5x faster than fer MTCNN + TFLite, <= 0.5x the time of fer Haar + TFLite.
    for ref in ("fer MTCNN + TFLite", "fer Haar + TFLite"):
        if ref not in e2e or "error" in e2e[ref]:
            continue
        print(f"\n# {ref} wall ms / each configuration's wall ms (how many times faster than {ref})")
        for name, rows in e2e.items():
            if name.startswith("fer") or "error" in rows or "detection only" in name:
                continue
            ratios = [e2e[ref][n]["wall_ms"] / rows[n]["wall_ms"] for n in names if n in rows and n in e2e[ref]]
            print(f"{name:44s} " + " ".join(f"{r:22.2f}" for r in ratios))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models", nargs="*", help="model names or directories (default: bundled, else untrained stand-ins)"
    )
    parser.add_argument(
        "--runtimes",
        nargs="*",
        default=["auto", "torch", "onnx", "onnx-int8"],
        choices=["auto", "torch", "onnx", "onnx-int8"],
        help="auto: the library's default (an onnxruntime graph where the backbone is convolutional)",
    )
    parser.add_argument("--e2e-models", type=int, default=None, help="end to end for the first N models only")
    parser.add_argument("--photos", nargs="*", help="subset of photo names")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--budget", type=float, default=20.0, help="seconds at most per measurement cell")
    parser.add_argument("--no-fer", action="store_true")
    parser.add_argument("--no-old-path", action="store_true", help="skip facenet-pytorch's detect_face configuration")
    parser.add_argument("--fer-python", default="/tmp/fervenv/bin/python")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    pics = [p for p in photos() if not args.photos or p.name in args.photos]
    faces, faces_source = _faces()
    result: dict[str, Any] = {
        "threads": args.threads,
        "load_before": [round(x, 1) for x in os.getloadavg()],
        "faces_source": faces_source,
        "photos": [{"name": p.name, "size": p.size, "faces": len(p.faces)} for p in pics],
        "torch": torch.__version__,
        "crops": [],
        "e2e": {},
    }
    with tempfile.TemporaryDirectory() as scratch:
        models = _models(args.models, Path(scratch))
        for i, (label, where) in enumerate(models.items()):
            for runtime in args.runtimes:
                rec = _load(where, runtime)
                print(f"{label} / {runtime}", flush=True)
                result["crops"].append(bench_crops(label, rec, runtime, faces, args))
                if args.e2e_models is None or i < args.e2e_models:
                    name = f"emotionkit {label} {runtime} MTCNN"
                    result["e2e"][name] = bench_e2e(name, rec.predict, pics, args)
                    if i == 0 and runtime == "torch":
                        result["default_config"] = name
                        result["e2e"]["emotionkit MTCNN detection only"] = bench_e2e(
                            "detection only",
                            rec.detector.detect,
                            pics,
                            args,  # type: ignore[union-attr]
                        )
                    if i == 0 and runtime in ("torch", "onnx"):
                        # YuNet as the library's default runs it (runtime "auto": onnxruntime when installed),
                        # and on torch, what "auto" falls back to without onnxruntime.
                        for det_runtime in ("auto", "torch"):
                            yunet = _load(where, runtime, "yunet", {"runtime": det_runtime})
                            chosen = yunet.detector.runtime  # type: ignore[union-attr]
                            what = f"default, {chosen}" if det_runtime == "auto" else chosen
                            name = f"emotionkit {label} {runtime} YuNet ({what} detector)"
                            result["e2e"][name] = bench_e2e(name, yunet.predict, pics, args)
                            if runtime == "torch":
                                name = f"emotionkit YuNet ({what}) detection only"
                                result["e2e"][name] = bench_e2e(name, yunet.detector.detect, pics, args)  # type: ignore[union-attr]
                    if i == 0 and runtime == "torch":
                        if not args.no_old_path:
                            from detection_recall import _FacenetPath

                            old = EmotionRecognizer.from_pretrained(
                                where, detector=_FacenetPath(max_side=None, factor=0.709)
                            )
                            name = f"emotionkit {label} torch, facenet-pytorch loop (before)"
                            result["e2e"][name] = bench_e2e(name, old.predict, pics, args)
    if not args.no_fer:
        print("fer (subprocess in its own venv)...", flush=True)
        result["fer"] = run_fer(pics, faces, args)
        if "error" in result["fer"]:
            print("fer failed:", result["fer"]["error"][:500])
    result["load_after"] = [round(x, 1) for x in os.getloadavg()]
    print_tables(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
