"""Compose a hybrid-ViT start for ``emotionkit train --init PATH`` from a trained MobileNetV2 and a trained ViT.

Usage (maintainers, once, at training time; nothing here runs when emotionkit is used)::

    python tools/hybrid_vit_start.py runs/hybrid_vit_start.safetensors
    python tools/hybrid_vit_start.py OUT --mobilenetv2 runs/some_mnv2 --vit runs/some_vit

The ``vit`` backbone with ``stem="mobilenetv2"`` (:class:`emotionkit.backbones.vit.MobileNetV2Stem`) tokenises a
face with MobileNetV2's layers down to stride 16, then runs a transformer. This script builds that network and fills
it from two trained models (bundled names or run directories, each checked against its recorded sha256):

- ``patch_embed.conv_stem``, ``patch_embed.bn1``, ``patch_embed.blocks.0-4``: the MobileNetV2's tensors of the same
  names (its stride-2 stem and first five stages; it must take the preprocessing the hybrid is trained with);
- the transformer (``cls_token``, ``pos_embed``, ``blocks``, ``norm``, ``head``): the ViT's, which needs the same
  depth, width and token grid (the bundled ``vit``: 6 layers of 192 dims on 6x6 tokens, like the hybrid at 96 px);
- ``patch_embed.proj`` (96 -> 192 channels, 1x1), the one new layer: timm's initialisation with ``--seed``.

It checks that every tensor of the network came from a source or is the new projection, and that the copied
MobileNetV2 part gives the source model's own stride-16 features on a real face, then writes safetensors whose
metadata record both sources (sha256) and the lineage of their weights.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from emotionkit.pretrained import PretrainedModel, build_backbone, resolve_pretrained

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _imagenet_starts as starts  # noqa: E402

#: The hybrid's backbone config; 96 px gives the bundled vit's 6x6 token grid.
HYBRID_CONFIG = {
    "in_channels": 1,
    "image_size": 96,
    "patch_size": 16,
    "stem": "mobilenetv2",
    "depth": 6,
    "drop_path_rate": 0.1,
}


def _load(name_or_dir: str) -> tuple[PretrainedModel, dict[str, torch.Tensor]]:
    """A trained model's resolved record and float32 state dict (sha256 verified)."""

    model = resolve_pretrained(name_or_dir)
    return model, {k: v.float() for k, v in model.state_dict().items()}


def compose(mobilenetv2: str, vit: str, seed: int) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The hybrid's state dict and the metadata naming where each part came from.

    Raises
    ------
    SystemExit
        A source of another architecture (a tensor the hybrid needs is absent or of another shape).
    """
    torch.manual_seed(seed)
    net = build_backbone("vit", HYBRID_CONFIG)
    own = net.state_dict()
    mnv2_model, mnv2 = _load(mobilenetv2)
    vit_model, vit_state = _load(vit)
    state: dict[str, torch.Tensor] = {}
    for key, tensor in own.items():
        if key.startswith("patch_embed.proj."):
            state[key] = tensor.clone()
            continue
        if key.startswith("patch_embed."):
            source_key, source, what = key.removeprefix("patch_embed."), mnv2, mobilenetv2
        else:
            source_key, source, what = key, vit_state, vit
        if source_key not in source or tuple(source[source_key].shape) != tuple(tensor.shape):
            got = tuple(source[source_key].shape) if source_key in source else "absent"
            raise SystemExit(f"{key}: {what!r} has {source_key} {got}, the hybrid needs {tuple(tensor.shape)}")
        state[key] = source[source_key].clone()
    meta = {
        "backbone": "vit",
        "backbone_config": json.dumps(HYBRID_CONFIG),
        "preprocessing": json.dumps(mnv2_model.preprocessor_config()),
        "converted_by": "tools/hybrid_vit_start.py",
        "source": f"emotionkit models {mobilenetv2!r} (tokeniser: conv_stem, bn1, blocks 0-4) + {vit!r} (transformer)",
        "source_sha256": f"{mnv2_model.sha256} + {vit_model.sha256}",
        "note": f"patch_embed.proj (96 -> 192, 1x1) is new: timm's initialisation, seed {seed}",
        "licence": "emotionkit's own weights (MIT); the MobileNetV2 part descends from torchvision's ImageNet "
        "MobileNetV2 checkpoint (BSD-3-Clause), see that model's card",
    }
    return state, meta


def check_stem(state: dict[str, torch.Tensor], mobilenetv2: str) -> float:
    """Largest difference between the hybrid's copied layers and the source MobileNetV2 on a real photo."""
    source = resolve_pretrained(mobilenetv2)
    mnv2 = build_backbone("mobilenetv2", source.config["backbone_config"], num_classes=source.num_outputs).eval()
    mnv2.load_state_dict({k: v.float() for k, v in source.state_dict().items()})
    hybrid = build_backbone("vit", HYBRID_CONFIG).eval()
    hybrid.load_state_dict(state)
    size = HYBRID_CONFIG["image_size"]
    face = torch.from_numpy(starts.grey(starts.cat_photo(size))).view(1, 1, size, size)
    pre = source.preprocessor_config()  # the MobileNetV2's own normalisation
    face = (face - pre["mean"][0]) / pre["std"][0]
    with torch.no_grad():
        expected = mnv2.blocks[:5](mnv2.bn1(mnv2.conv_stem(face)))
        stem = hybrid.patch_embed
        got = stem.blocks(stem.bn1(stem.conv_stem(face)))
    return float((expected - got).abs().max())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="the start file to write (.safetensors)")
    parser.add_argument("--mobilenetv2", default="mobilenetv2", help="MobileNetV2 model: bundled name or run dir")
    parser.add_argument("--vit", default="vit", help="ViT model (6 x 192 on 6x6 tokens): bundled name or run dir")
    parser.add_argument("--seed", type=int, default=0, help="seed of the new projection's initialisation")
    args = parser.parse_args(argv)
    state, meta = compose(args.mobilenetv2, args.vit, args.seed)
    diff = check_stem(state, args.mobilenetv2)
    if diff > 1e-5:
        raise SystemExit(f"the copied MobileNetV2 layers differ from the source by {diff:.3g} on a real photo")
    print(f"copied MobileNetV2 layers match the source on skimage's cat (max difference {diff:.2g})")
    starts.save_start(state, args.out, meta)
    print(
        "train with: emotionkit train --backbone vit --init "
        + args.out
        + " --config '"
        + json.dumps(HYBRID_CONFIG)
        + "' --preprocessing '"
        + meta["preprocessing"]
        + "'"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
