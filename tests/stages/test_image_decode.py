"""The safe decode helper: a specific error for every bad file, correct RGB for every awkward one."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from stages.fixtures import images as fx
from stages.image_decode import DecodeError, decode_image


def _code(data: bytes, **kwargs) -> str:
    with pytest.raises(DecodeError) as info:
        decode_image(data, **kwargs)
    return info.value.code


def _pixels(decoded) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(decoded.normalized_bytes)))


def test_plain_rgb_jpeg_keeps_its_bytes():
    decoded = decode_image(fx.encode(fx.scene(1).image, "JPEG"))
    assert (decoded.width, decoded.height, decoded.format, decoded.mode) == (320, 240, "JPEG", "RGB")
    assert decoded.normalized_bytes is None


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "empty_file"),
        (fx.non_image_bytes(), "not_an_image"),
        (fx.truncated_jpeg(), "truncated"),
        (fx.decompression_bomb(), "decompression_bomb"),
    ],
    ids=["zero_bytes", "html_as_jpg", "truncated_jpeg", "decompression_bomb"],
)
def test_bad_files_get_specific_codes(data, code):
    assert _code(data) == code


def test_bomb_between_one_and_two_times_the_limit_is_an_error_not_a_warning():
    # Pillow only warns between 1x and 2x its limit; the helper must refuse.
    assert _code(fx.decompression_bomb(12_000, 10_000), max_pixels=100_000_000) == "decompression_bomb"
    assert _code(fx.encode(fx.scene(2).image, "PNG"), max_pixels=1000) == "decompression_bomb"


def test_format_allow_list():
    gif = fx.encode(fx.scene(3).image, "GIF")
    assert _code(gif, formats=("JPEG", "PNG")) == "format_not_allowed"
    assert decode_image(gif).format == "GIF"


def test_cmyk_is_normalised_to_matching_rgb():
    original = np.asarray(fx.scene(4).image, dtype=np.int16)
    decoded = decode_image(fx.cmyk_jpeg(4))
    assert decoded.mode == "CMYK" and decoded.format == "JPEG"
    rgb = _pixels(decoded).astype(np.int16)
    assert rgb.shape == original.shape
    assert np.abs(rgb - original).mean() < 12  # two lossy encodes, same picture


def test_sixteen_bit_is_scaled_not_clipped():
    decoded = decode_image(fx.sixteen_bit_png())
    assert decoded.mode.startswith("I")
    rgb = _pixels(decoded)
    assert rgb.shape == (200, 240, 3)
    assert rgb[0, 0].tolist() == [0, 0, 0] and rgb[0, -1].tolist() == [255, 255, 255]
    assert 120 <= rgb[0, 120, 0] <= 135  # the middle of the ramp stays mid-grey, not 255


def test_transparency_is_composited_on_white():
    rgb = _pixels(decode_image(fx.alpha_png()))
    assert rgb[5, 5].tolist() == [255, 255, 255]
    assert rgb[100, 120].tolist() == [255, 0, 0]
    palette = decode_image(fx.palette_png(5))
    assert palette.mode == "P" and _pixels(palette).shape[2] == 3


def test_exif_rotation_is_applied():
    decoded = decode_image(fx.exif_rotated_jpeg(320, 200, orientation=6))
    assert (decoded.width, decoded.height) == (200, 320)
    rgb = _pixels(decoded).astype(int)
    # Stored: blue band on the left. Orientation 6 rotates 90 degrees clockwise: the band ends on top.
    assert rgb[5, 100, 2] > 200 and rgb[5, 100, 0] < 60
    assert rgb[-5, 100].min() > 200


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_exif_rotation_is_applied_beyond_jpeg(fmt):
    image = Image.new("RGB", (320, 200), (255, 255, 255))
    exif = Image.Exif()
    exif[0x0112] = 6
    decoded = decode_image(fx.encode(image, fmt, exif=exif.tobytes()))
    assert (decoded.width, decoded.height) == (200, 320) and decoded.normalized_bytes is not None


def _pillow_accepts(data: bytes) -> bool:
    try:
        Image.open(io.BytesIO(data)).load()
    except Exception:  # noqa: BLE001 - any failure is Pillow's "bad file" verdict
        return False
    return True


def _damaged_jpegs() -> dict[str, bytes]:
    """Ways web JPEGs go wrong; simplejpeg warns on all of them, Pillow rejects only some."""
    good = fx.encode(fx.scene(7, 320, 240).image, "JPEG", quality=90)
    grey = fx.encode(fx.scene(8, 320, 240).image.convert("L"), "JPEG")
    progressive = io.BytesIO()
    fx.scene(9, 320, 240).image.save(progressive, "JPEG", progressive=True)
    scan = good.index(b"\xff\xda") + 200
    return {
        "good": good,
        "grey": grey,
        "progressive": progressive.getvalue(),
        "garbage_after_eoi": good + b"\x00junk" * 10,
        "garbage_before_eoi": good[:-2] + b"\x12\x34\x56" + good[-2:],
        "flipped_scan_bytes": good[:scan]
        + bytes(b ^ 0x5A for b in good[scan : scan + 40])
        + good[scan + 40 :],
        "cut_in_scan": good[: len(good) // 2],
        "cut_before_eoi": good[:-2],
        "progressive_cut": progressive.getvalue()[: len(progressive.getvalue()) * 2 // 3],
    }


@pytest.mark.parametrize("name", list(_damaged_jpegs()))
def test_libjpeg_fast_path_never_changes_pillows_verdict(name):
    data = _damaged_jpegs()[name]
    try:
        decoded = decode_image(data)
    except DecodeError:
        decoded = None
    assert (decoded is not None) == _pillow_accepts(data)
    if name in ("good", "grey", "progressive", "garbage_after_eoi"):
        assert decoded is not None and decoded.normalized_bytes is None
    if name in ("cut_in_scan", "progressive_cut"):
        assert _code(data) == "truncated"
