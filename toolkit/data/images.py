"""Still images as the 8-bit RGB a viewer shows, whatever their mode and bit depth. PIL and numpy, no torch.

Pillow's plain `convert("RGB")` is right for most modes but not all: it clips
16-bit grayscale (`I;16`, `I;16B`, `I`) at 255, so a mid-gray 16-bit PNG trains
as white, and it drops alpha, so what is transparent shows whatever colour the
hidden pixels happen to hold (often black). Here 16-bit values are scaled to
8 bits, and alpha (in `RGBA`, `LA`, `PA`, or a palette's or PNG's transparent
colour) is composited over ALPHA_BACKGROUND, the white a page or an image
viewer shows behind a transparent image.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageOps

# What shows through transparent pixels: white, as in a browser or an image viewer on a light page.
ALPHA_BACKGROUND = (255, 255, 255)

# Modes whose values are 16-bit integers (Pillow opens a 16-bit grayscale PNG as `I;16`; `I` holds them
# in 32 bits). Their full scale is 65535.
_SIXTEEN_BIT_GRAY = ("I;16", "I;16L", "I;16B", "I;16N", "I")
_SIXTEEN_BIT_MAX = 65535.0
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


def image_to_rgb(image: Image.Image) -> np.ndarray:
    """uint8 (H, W, 3) pixels of `image` as a viewer shows it (EXIF orientation applied)."""
    image = ImageOps.exif_transpose(image)
    if image.mode in _SIXTEEN_BIT_GRAY:
        gray = np.asarray(image).astype(np.float64) * (255.0 / _SIXTEEN_BIT_MAX)
        gray = np.clip(np.rint(gray), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if image.mode == "F":  # floating point gray is stored in [0, 1]
        gray = np.clip(np.rint(np.asarray(image, dtype=np.float64) * 255.0), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if image.mode in _ALPHA_MODES or "transparency" in image.info:
        # Pillow expands a palette (and its transparent entries) or a tRNS colour key into real alpha.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*ALPHA_BACKGROUND, 255))
        return np.asarray(Image.alpha_composite(background, rgba).convert("RGB"), dtype=np.uint8)
    # 1-bit, L, P without transparency, RGB, CMYK, YCbCr: Pillow's own conversion is what a viewer shows.
    return np.asarray(image.convert("RGB"), dtype=np.uint8)
