"""Image loading: every accepted input becomes (H, W, 3) uint8 RGB; every bad one a clear EmotionKitError."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from emotionkit.exceptions import EmotionKitError, ImageNotFoundError, InvalidImageError
from emotionkit.io import ImageTooLargeError, load_image, sample_image_path, to_float01, to_uint8_rgb


def test_sample_photo_loads_as_rgb_uint8():
    image = load_image(sample_image_path())
    assert image.shape == (512, 512, 3) and image.dtype == np.uint8
    assert image.flags.c_contiguous
    assert 60 < image.mean() < 200  # a real photo, not a blank


def test_path_pil_and_array_inputs_agree(sample_photo):
    from_path = load_image(sample_photo)
    from_str = load_image(str(sample_photo))
    with Image.open(sample_photo) as im:
        from_pil = load_image(im)
    from_array = load_image(from_path.copy())
    for other in (from_str, from_pil, from_array):
        np.testing.assert_array_equal(other, from_path)


@pytest.mark.parametrize(
    ("array", "expected"),
    [
        (np.full((4, 5), 255, np.uint8), 255),
        (np.full((4, 5, 1), 128, np.uint8), 128),
        (np.full((4, 5, 4), 7, np.uint8), 7),  # alpha dropped
        (np.full((4, 5, 3), 65535, np.uint16), 255),
        (np.full((4, 5), 0.5, np.float32), 128),
        (np.full((4, 5, 3), 1.0, np.float64), 255),
        (np.ones((4, 5), bool), 255),
        (np.full((4, 5), 200, np.int64), 200),
    ],
    ids=["gray", "gray1", "rgba", "uint16", "float32", "float64", "bool", "int64"],
)
def test_array_inputs_become_uint8_rgb(array, expected):
    image = load_image(array)
    assert image.shape == (4, 5, 3) and image.dtype == np.uint8
    assert (image == expected).all()


def test_rgba_drops_alpha_keeps_colour():
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 10
    np.testing.assert_array_equal(load_image(rgba)[..., 0], 200)
    np.testing.assert_array_equal(load_image(rgba)[..., 1:], 0)


def test_exif_orientation_is_applied(tmp_path):
    im = Image.new("RGB", (40, 20), (255, 0, 0))
    im.paste((0, 0, 255), (0, 0, 10, 20))  # blue strip on the left
    exif = im.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = tmp_path / "rotated.jpg"
    im.save(path, exif=exif, quality=95)
    image = load_image(path)
    assert image.shape == (40, 20, 3)  # displayed upright: taller than wide
    assert image[:8, :, 2].mean() > 200  # the left strip is now on top


def test_16bit_png_and_32bit_integer_tiff(tmp_path):
    ramp = (np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "a.png")
    Image.fromarray(ramp.astype(np.int32)).save(tmp_path / "a.tif")
    expected = load_image(ramp)
    np.testing.assert_array_equal(load_image(tmp_path / "a.png"), expected)
    np.testing.assert_array_equal(load_image(tmp_path / "a.tif"), expected)


def _assert_clear(excinfo, builtin, *fragments):
    err = excinfo.value
    assert isinstance(err, EmotionKitError) and isinstance(err, builtin), type(err).__mro__
    for fragment in fragments:
        assert fragment in str(err), f"{fragment!r} not in {str(err)!r}"


def test_missing_path(tmp_path):
    path = tmp_path / "nope.jpg"
    with pytest.raises(ImageNotFoundError) as excinfo:
        load_image(path)
    _assert_clear(excinfo, FileNotFoundError, "nope.jpg", "Check the path")


def test_directory_is_not_an_image(tmp_path):
    with pytest.raises(InvalidImageError) as excinfo:
        load_image(tmp_path)
    _assert_clear(excinfo, ValueError, "directory", str(tmp_path))


def test_file_that_is_not_an_image(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("these are not pixels")
    with pytest.raises(InvalidImageError) as excinfo:
        load_image(path)
    _assert_clear(excinfo, ValueError, "notes.jpg", "Allowed")


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_image_file(tmp_path, sample_photo, fmt):
    full = tmp_path / f"full.{fmt.lower()}"
    Image.open(sample_photo).save(full, format=fmt)
    data = full.read_bytes()
    cut = tmp_path / f"cut.{fmt.lower()}"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(InvalidImageError) as excinfo:
        load_image(cut)
    _assert_clear(excinfo, ValueError, cut.name, "truncated")


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def test_decompression_bomb_guard_stays_on(tmp_path):
    import emotionkit.recognizer  # noqa: F401  (importing the library must not lift the limit)

    assert Image.MAX_IMAGE_PIXELS is not None
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header_only(20_000, 20_000))  # 400 Mpx declared in a few bytes
    with pytest.raises(ImageTooLargeError) as excinfo:
        load_image(path)
    _assert_clear(excinfo, ValueError, "bomb.png", "MAX_IMAGE_PIXELS")
    assert isinstance(excinfo.value, Image.DecompressionBombError)  # still Pillow's error for those who catch it


@pytest.mark.parametrize(
    ("array", "fragment"),
    [
        (np.zeros((0, 5, 3), np.uint8), "empty"),
        (np.zeros((4, 0), np.uint8), "empty"),
        (np.zeros((4, 5, 5), np.uint8), "(4, 5, 5)"),
        (np.zeros((4, 5, 2), np.uint8), "(4, 5, 2)"),
        (np.zeros((2, 4, 5, 3), np.uint8), "predict_proba"),
        (np.zeros(7, np.uint8), "(7,)"),
        (np.full((4, 5), np.nan, np.float32), "NaN"),
        (np.full((4, 5, 3), np.inf, np.float64), "NaN or infinite"),
        (np.full((4, 5), 2.0, np.float32), "[2, 2]"),
        (np.full((4, 5), -1, np.int32), "[-1, -1]"),
        (np.full((4, 5), 300, np.int64), "300"),
        (np.zeros((4, 5), np.complex64), "complex64"),
        (np.zeros((4, 5), object), "object"),
    ],
    ids=[
        "empty",
        "empty-w",
        "5-channels",
        "2-channels",
        "batch",
        "1-d",
        "nan",
        "inf",
        "float>1",
        "negative",
        "int>255",
        "complex",
        "object",
    ],
)
def test_bad_arrays(array, fragment):
    with pytest.raises(InvalidImageError) as excinfo:
        load_image(array)
    _assert_clear(excinfo, ValueError, fragment, "Allowed")


@pytest.mark.parametrize("value", [[[0, 1], [2, 3]], 3.0, b"bytes", None])
def test_unsupported_input_types(value):
    with pytest.raises(InvalidImageError) as excinfo:
        load_image(value)
    _assert_clear(excinfo, ValueError, type(value).__name__, "Allowed")


def test_to_float01_and_to_uint8_rgb():
    np.testing.assert_allclose(to_float01(np.array([0, 65535], np.uint16)), [0.0, 1.0])
    assert to_float01(np.array([0.25], np.float16)).dtype == np.float32
    assert to_uint8_rgb(np.zeros((3, 2), np.float32)).shape == (3, 2, 3)


def test_sample_image_path_is_inside_the_package():
    path = sample_image_path()
    assert path.is_file() and path.parent.name == "assets"
    assert Path(__import__("emotionkit").__file__).parent in path.parents


@pytest.mark.parametrize("url", ["https://example.com/face.jpg", "http://example.com/a.png", "s3://bucket/face.jpg"])
def test_url_strings_say_urls_are_not_fetched(url):
    with pytest.raises(InvalidImageError) as excinfo:
        load_image(url)
    _assert_clear(excinfo, ValueError, repr(url), "never downloads", "Download it first")


def _frames_of(sample_photo):
    photo = Image.open(sample_photo).convert("RGB").resize((64, 64))
    return [photo, photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT), photo.rotate(90)]


@pytest.mark.parametrize("fmt", ["GIF", "TIFF"])
def test_animated_gif_and_multipage_tiff_warn_that_only_frame_0_is_read(tmp_path, sample_photo, fmt):
    from emotionkit.exceptions import EmotionKitWarning

    frames = _frames_of(sample_photo)
    path = tmp_path / f"anim.{fmt.lower()}"
    frames[0].save(path, format=fmt, save_all=True, append_images=frames[1:])
    with pytest.warns(EmotionKitWarning, match=r"holds 3 frames .* only frame 0 is read"):
        image = load_image(path)
    with Image.open(path) as im:
        np.testing.assert_array_equal(image, np.asarray(im.convert("RGB")))  # frame 0
    with Image.open(path) as im:
        im.seek(2)
        with pytest.warns(EmotionKitWarning, match="only frame 2 is read"):
            load_image(im)


def test_single_frame_gif_does_not_warn(tmp_path, sample_photo):
    import warnings

    path = tmp_path / "still.gif"
    _frames_of(sample_photo)[0].save(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_image(path).shape == (64, 64, 3)


# Prefixes that take the bytes past format detection into each decoder.
_HEADERS = [
    b"",
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff\xe0",
    b"GIF89a",
    b"II*\x00",
    b"MM\x00*",
    b"BM",
    b"RIFF\0\0\0\0WEBP",
]


def _real_prefixes() -> list[bytes]:
    import io

    photo = Image.open(sample_image_path()).convert("RGB").resize((16, 16))
    out = []
    for fmt in ("PNG", "JPEG", "GIF", "TIFF", "BMP", "WEBP"):
        buf = io.BytesIO()
        photo.save(buf, format=fmt)
        out.append(buf.getvalue())
    return out


_REAL = _real_prefixes()


def _check_any_bytes(tmp_path, data: bytes) -> None:
    import time

    path = tmp_path / "fuzz.img"
    path.write_bytes(data)
    start = time.perf_counter()
    try:
        image = load_image(path)
    except EmotionKitError:
        pass
    else:
        assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8
    assert time.perf_counter() - start < 2.0


def test_any_bytes_give_an_image_or_an_emotionkit_error(tmp_path):
    """Random bytes, known headers followed by noise, and real files cut or with bytes flipped."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    headers = st.sampled_from(_HEADERS)
    noise = st.binary(max_size=2048)
    damaged = st.tuples(st.sampled_from(_REAL), st.integers(0, 10_000), st.binary(min_size=1, max_size=8)).map(
        lambda t: t[0][: t[1] % len(t[0])] + t[2] + t[0][t[1] % len(t[0]) + len(t[2]) :]
    )
    cut = st.tuples(st.sampled_from(_REAL), st.integers(0, 10_000)).map(lambda t: t[0][: t[1] % len(t[0])])

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.one_of(st.tuples(headers, noise).map(b"".join), damaged, cut))
    def check(data: bytes) -> None:
        _check_any_bytes(tmp_path, data)

    check()
