"""Image files as a classifier reads them: PNG/JPEG decoded with PIL, refused by
size before they are decoded."""

from __future__ import annotations

from apps.errors import UsageError, one_line

SIXTEEN_BIT_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N")


def read_image(path, channels: int, max_pixels: int | None = None):
    """Decodes an image file into uint8 (H, W, channels); UsageError if it can't,
    or if it has more than `max_pixels` (width x height, read from the header
    before anything is decoded; default `apps.data.images.MAX_PIXELS`).

    16-bit grey PNGs keep their full range, scaled to 8 bits (value / 257), as
    TensorFlow's decoder reads them for training; PIL's own conversion clips them.
    """
    from apps.data.images import MAX_PIXELS

    limit = MAX_PIXELS if max_pixels is None else max_pixels
    try:
        with _open_image(path) as image:
            width, height = image.size
            if width * height > limit:
                raise UsageError(
                    f"{width}x{height} is {width * height:,} pixels, more than "
                    f"--max-pixels {limit:,}; shrink the image or raise --max-pixels"
                )
            image.load()
            return _eight_bit(image, channels)
    except UsageError:
        raise
    except FileNotFoundError:
        raise UsageError("no such file") from None
    except Exception as error:  # PIL raises many types for a bad file
        raise UsageError(f"not a readable PNG/JPEG image ({one_line(error)})") from None


def _open_image(path):
    """PIL's `Image.open` without PIL's decompression-bomb limit (an error above
    179 megapixels whatever --max-pixels says): `read_image` checks the size."""
    from PIL import Image

    saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
    try:
        return Image.open(path)
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def _eight_bit(image, channels: int):
    import numpy as np
    from PIL import Image

    if image.mode in SIXTEEN_BIT_MODES:
        wide = np.asarray(image, dtype=np.float64)
        image = Image.fromarray(np.clip(np.round(wide / 257), 0, 255).astype(np.uint8))
    pixels = np.asarray(image.convert("L" if channels == 1 else "RGB"), np.uint8)
    return pixels[..., None] if pixels.ndim == 2 else pixels
