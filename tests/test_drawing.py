"""drawing.annotate: boxes and "label (0.87)" captions drawn in input pixels, input untouched."""

from __future__ import annotations

import numpy as np
from PIL import Image

from emotionkit.drawing import COLORS, annotate, face_caption
from emotionkit.types import EMOTIONS, Detection, FaceEmotion


def make_face(box, label="happy", p=0.87, landmarks=None) -> FaceEmotion:
    rest = (1.0 - p) / (len(EMOTIONS) - 1)
    scores = {name: (p if name == label else rest) for name in EMOTIONS}
    return FaceEmotion(Detection(box, 0.99, landmarks), scores, label)


def test_caption_text():
    assert face_caption(make_face((0, 0, 10, 10), "sad", 0.5)) == "sad (0.50)"


def test_box_caption_and_landmarks_are_drawn():
    image = np.zeros((200, 300, 3), np.uint8)
    face = make_face((100.0, 80.0, 180.0, 170.0), landmarks=((120.0, 110.0),) * 5)
    out = annotate(image, [face], line_width=2)
    assert isinstance(out, Image.Image) and out.mode == "RGB" and out.size == (300, 200)
    pixels = np.asarray(out)
    assert tuple(pixels[120, 100]) == COLORS["happy"] and tuple(pixels[80, 140]) == COLORS["happy"]  # box edges
    assert tuple(pixels[110, 120]) == COLORS["happy"]  # a landmark dot
    assert (pixels[50:80, 100:180] != 0).any()  # the caption sits above the box
    assert (pixels[:, :90] == 0).all() and (pixels[175:, :] == 0).all()  # nothing drawn elsewhere
    assert (image == 0).all()  # the input is not modified


def test_caption_moves_inside_at_the_top_edge_and_one_colour_option():
    face = make_face((0.0, 0.0, 60.0, 60.0))
    out = np.asarray(annotate(np.zeros((100, 100, 3), np.uint8), [face], color=(0, 255, 0), line_width=1))
    assert tuple(out[30, 0]) == (0, 255, 0) and tuple(out[60, 30]) == (0, 255, 0)  # left and bottom edges (inclusive)
    assert not (out == np.array(COLORS["happy"], np.uint8)).all(-1).any()  # the label colour is overridden
    assert (out[2:12, 2:40] != 0).any()  # the caption is inside the box, not cut off above the image
    assert (out[62:, :] == 0).all() and (out[20:, 62:] == 0).all()  # the caption may be wider than the box


def test_no_faces_returns_the_image_unchanged(sample_photo):
    out = annotate(sample_photo, [])
    assert np.array_equal(np.asarray(out), np.asarray(Image.open(sample_photo).convert("RGB")))
