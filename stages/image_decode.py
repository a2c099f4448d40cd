"""The one safe image decode used by every stage that opens images.

Safety: only allow-listed formats are opened; the pixel count is checked from the header before any
pixel is decoded (Pillow only raises above twice its limit and merely warns below); the full `load()`
runs so truncated files fail here, not in a trainer. Images whose plain `convert("RGB")` would be wrong
(EXIF rotation, CMYK, 16-bit, palette or alpha) are normalised to 8-bit RGB and re-encoded.

Plain RGB and greyscale JPEGs, most of a web corpus, are fully decoded by libjpeg-turbo through
simplejpeg, straight from the bytes, in its strict mode. Every scan and every block is entropy-decoded
at full resolution, which is what finds truncated or corrupt data; the pixels are thrown away, so the
fast integer IDCT and upsampling are used (their rounding cannot change a verdict). About 1.3x faster
than Pillow's `load()` (bench/ingest_throughput.py). Any warning there (truncation, but also the harmless
extra bytes many web JPEGs carry) hands the file to Pillow's `load()`, whose verdict is final: the fast
path never changes a verdict.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
import simplejpeg
from PIL import Image, ImageOps, UnidentifiedImageError

DEFAULT_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
DEFAULT_MAX_PIXELS = 89_478_485  # Pillow's own MAX_IMAGE_PIXELS, enforced as an error
EXIF_ORIENTATION = 0x0112
JPEG_QUALITY = 95


class DecodeError(Exception):
    """A per-image problem; `code` becomes the reject reason `error:<code>`."""

    def __init__(self, code: str, detail: str = ""):
        super().__init__(f"{code}: {detail}")
        self.code, self.detail = code, detail


@dataclass(frozen=True)
class DecodedImage:
    width: int
    height: int
    format: str
    mode: str  # the mode as stored in the file, before normalisation
    normalized_bytes: bytes | None  # re-encoded RGB when the stored bytes needed normalising


def _to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB with transparency composited on white and 16-bit samples scaled, not clipped."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.uint32)
        scale = 257 if image.mode.startswith("I;16") or array.max() > 255 else 1
        image = Image.fromarray((array // scale).clip(0, 255).astype(np.uint8), "L")
    if image.mode == "P" or image.mode == "PA":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "La", "RGBa"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _needs_normalising(image: Image.Image) -> bool:
    if image.mode not in ("RGB", "L"):
        return True
    # Parsing EXIF costs about 20 us; only files that carry it (TIFF keeps orientation among its tags) can rotate.
    if "exif" not in image.info and image.format != "TIFF":
        return False
    return image.getexif().get(EXIF_ORIENTATION, 1) not in (1, None)


def _decoded_by_libjpeg(data: bytes, image: Image.Image) -> bool:
    """True when simplejpeg decoded every pixel of a plain JPEG without a single warning."""
    if image.format != "JPEG" or image.mode not in ("RGB", "L") or _needs_normalising(image):
        return False
    try:
        simplejpeg.decode_jpeg(
            data,
            colorspace="RGB" if image.mode == "RGB" else "GRAY",
            fastdct=True,
            fastupsample=True,
            strict=True,
        )
    except ValueError:
        return False
    return True


def _open_checked(data: bytes | None, formats: tuple[str, ...], max_pixels: int) -> Image.Image:
    """Open (header only), enforcing the allow-list and the pixel limit before any pixel is decoded."""
    if not data:
        raise DecodeError("empty_file", "zero bytes")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))
        except UnidentifiedImageError:
            raise DecodeError("not_an_image", f"unrecognised bytes starting {data[:8]!r}") from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise DecodeError("decompression_bomb", str(exc)) from None
        except Exception as exc:  # noqa: BLE001 - any parser failure is a bad file, not a crash
            raise DecodeError("decode_failed", f"{type(exc).__name__}: {exc}") from None
    if image.format not in formats:
        raise DecodeError("format_not_allowed", f"{image.format} not in {list(formats)}")
    width, height = image.size
    if width <= 0 or height <= 0 or width * height > max_pixels:
        raise DecodeError("decompression_bomb", f"{width}x{height} exceeds {max_pixels} pixels")
    return image


def _load(image: Image.Image) -> None:
    try:
        image.load()
    except Exception as exc:  # noqa: BLE001 - truncated data surfaces only here
        truncated = "truncated" in str(exc).lower() or isinstance(exc, EOFError)
        raise DecodeError(
            "truncated" if truncated else "decode_failed", f"{type(exc).__name__}: {exc}"
        ) from None


def _normalised(image: Image.Image) -> Image.Image:
    try:
        return _to_rgb(ImageOps.exif_transpose(image))
    except Exception as exc:  # noqa: BLE001
        raise DecodeError("decode_failed", f"normalising {image.mode}: {type(exc).__name__}: {exc}") from None


def decode_image(
    data: bytes | None,
    formats: tuple[str, ...] = DEFAULT_FORMATS,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> DecodedImage:
    """Fully decode `data`; raises DecodeError with a specific code for every way it can be bad."""
    image = _open_checked(data, formats, max_pixels)
    width, height = image.size
    if not _decoded_by_libjpeg(data, image):  # type: ignore[arg-type]
        _load(image)
    fmt, mode = image.format, image.mode
    if not _needs_normalising(image):
        return DecodedImage(width, height, fmt, mode, None)
    rgb = _normalised(image)
    buffer = io.BytesIO()
    if fmt == "JPEG":
        rgb.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    else:
        rgb.save(buffer, format="PNG")
    return DecodedImage(rgb.width, rgb.height, fmt, mode, buffer.getvalue())


def open_rgb(
    data: bytes | None,
    formats: tuple[str, ...] = DEFAULT_FORMATS,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    min_side: int | None = None,
) -> Image.Image:
    """The pixels a model sees: the same checks as `decode_image`, then 8-bit RGB with the same
    normalisation (rotation, alpha on white, 16-bit scaled), so every stage sees one image.

    `min_side` lets libjpeg decode a JPEG at 1/2, 1/4 or 1/8 scale (its DCT scaling) as long as both
    sides stay at least that large: a model that resizes to 224 or 64 pixels gets nearly the same input
    for a fraction of the decoding.
    """
    image = _open_checked(data, formats, max_pixels)
    if min_side and image.format == "JPEG":
        image.draft(image.mode, (min_side, min_side))
    _load(image)
    return _normalised(image) if _needs_normalising(image) else image.convert("RGB")
