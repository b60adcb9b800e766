"""Specification of the MNIST-style preprocessing of uploads: colour modes, inversion, cropping, the 20x20 fit and centring by mass."""

import io

import numpy as np
import pytest
from PIL import Image

from mnist_data import load_mnist
from serve.preprocess import InputError, preprocess_upload


def encode(image: Image.Image, image_format: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, image_format)
    return buffer.getvalue()


def ink_box(image: np.ndarray) -> tuple[int, int]:
    """Return (height, width) of the box around the non-zero pixels."""
    rows = np.flatnonzero(image.any(axis=1))
    columns = np.flatnonzero(image.any(axis=0))
    return rows[-1] - rows[0] + 1, columns[-1] - columns[0] + 1


def centre_of_mass(image: np.ndarray) -> tuple[float, float]:
    mass = image.astype(np.float64)
    return (mass.sum(axis=1) @ np.arange(28)) / mass.sum(), (mass.sum(axis=0) @ np.arange(28)) / mass.sum()


@pytest.fixture(scope="module")
def first_test_digits() -> tuple[np.ndarray, np.ndarray]:
    images, labels = load_mnist("test")
    return images[:100], labels[:100]


@pytest.fixture(scope="module")
def drawn_digit(first_test_digits) -> Image.Image:
    """A test digit drawn dark on light and enlarged 4x, as a user would upload it."""
    return Image.fromarray(255 - first_test_digits[0][0]).resize((112, 112), Image.Resampling.BICUBIC)


def test_light_background_inverted():
    picture = np.full((100, 80), 255, np.uint8)
    picture[20:80, 35:45] = 0
    image = preprocess_upload(encode(Image.fromarray(picture)), "bar.png")
    assert image.shape == (28, 28)
    assert image.dtype == np.uint8
    assert image[0, 0] == 0, f"background should become black, got {image[0, 0]}"
    assert image.max() == 255, f"ink should be stretched to 255, got max {image.max()}"


def test_tall_ink_fits_20_high():
    picture = np.zeros((300, 200), np.uint8)
    picture[30:270, 90:120] = 200  # 240 x 30: scaled by 20/240 to 20 x 2.5
    height, width = ink_box(preprocess_upload(encode(Image.fromarray(picture)), "tall.png"))
    assert height == 20, f"long side should be 20, got {height}"
    assert 2 <= width <= 4, f"short side should keep the 8:1 ratio (2.5 px, +-1 for resampling), got {width}"


def test_wide_ink_fits_20_wide():
    picture = np.zeros((200, 300), np.uint8)
    picture[90:130, 30:270] = 255  # 40 x 240: scaled to 3.3 x 20
    height, width = ink_box(preprocess_upload(encode(Image.fromarray(picture)), "wide.png"))
    assert width == 20, f"long side should be 20, got {width}"
    assert 3 <= height <= 5, f"short side should keep the 6:1 ratio (3.3 px, +-1 for resampling), got {height}"


def test_offcentre_ink_centred_by_mass():
    picture = np.full((400, 400), 255, np.uint8)
    picture[10:60, 300:390] = 0  # a blob in the top right corner
    picture[60:120, 300:320] = 0  # and a stem below its left end, so the mass is off the box centre
    row, column = centre_of_mass(preprocess_upload(encode(Image.fromarray(picture)), "corner.png"))
    assert abs(row - 14) <= 0.5, f"centre of mass row {row:.2f}, expected 14 +- 0.5 (whole-pixel shift)"
    assert abs(column - 14) <= 0.5, f"centre of mass column {column:.2f}, expected 14 +- 0.5 (whole-pixel shift)"


def test_mnist_digits_pass_through(first_test_digits):
    images, _ = first_test_digits
    for index, original in enumerate(images):
        result = preprocess_upload(encode(Image.fromarray(original)), f"digit-{index}.png").astype(int)
        # MNIST centred its digits to a fraction of a pixel, this preprocessing to whole pixels.
        errors = [np.abs(np.roll(result, (dr, dc), axis=(0, 1)) - original).mean() for dr in (-1, 0, 1) for dc in (-1, 0, 1)]
        assert min(errors) <= 0.5, f"test digit {index}: mean difference {min(errors):.2f} levels after the best 1-pixel shift, expected <= 0.5"


@pytest.mark.parametrize(("mode", "image_format", "tolerance"), [
    ("RGB", "PNG", 0.0),
    ("RGBA", "PNG", 0.0),
    ("LA", "PNG", 0.0),
    ("I;16", "PNG", 0.0),
    ("P", "PNG", 4.0),  # a 256-colour palette quantizes the gray levels
    ("1", "PNG", 12.0),  # bilevel: every pixel becomes black or white
    ("L", "JPEG", 1.0),
    ("RGB", "JPEG", 1.0),
    ("CMYK", "JPEG", 1.0),
])
def test_colour_modes_agree(drawn_digit, mode, image_format, tolerance):
    reference = preprocess_upload(encode(drawn_digit), "gray.png").astype(int)
    if mode == "I;16":
        converted = Image.fromarray(np.asarray(drawn_digit).astype(np.uint16) * 257)  # 16-bit gray, 65535 = white
    else:
        converted = drawn_digit.convert(mode)
    upload = encode(converted, image_format)
    assert Image.open(io.BytesIO(upload)).mode == mode, "the upload should keep the colour mode under test"
    difference = np.abs(preprocess_upload(upload, f"digit.{image_format.lower()}").astype(int) - reference).mean()
    assert difference <= tolerance, f"{mode} {image_format}: mean difference {difference:.2f} levels from grayscale PNG, expected <= {tolerance}"


@pytest.mark.parametrize("ink", [0, 255], ids=["dark-ink", "light-ink"])
def test_transparent_background_keeps_ink(drawn_digit, ink):
    reference = preprocess_upload(encode(drawn_digit), "gray.png").astype(int)
    alpha = Image.fromarray(255 - np.asarray(drawn_digit))  # opaque where the digit is
    strokes = Image.new("RGBA", drawn_digit.size, (ink, ink, ink, 0))
    strokes.putalpha(alpha)
    difference = np.abs(preprocess_upload(encode(strokes), "strokes.png").astype(int) - reference).mean()
    assert difference <= 1.0, f"ink {ink} on transparency: mean difference {difference:.2f} levels from the opaque drawing, expected <= 1"


def test_exif_rotation_applied(drawn_digit):
    reference = preprocess_upload(encode(drawn_digit), "upright.png")
    rotated = drawn_digit.rotate(90, expand=True)  # stored a quarter turn off; the EXIF orientation undoes it
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    buffer = io.BytesIO()
    rotated.save(buffer, "JPEG", exif=exif, quality=95)
    difference = np.abs(preprocess_upload(buffer.getvalue(), "photo.jpg").astype(int) - reference.astype(int)).mean()
    assert difference <= 2.0, f"mean difference {difference:.2f} levels from the upright image, expected <= 2 (JPEG)"


def test_blank_image_rejected():
    with pytest.raises(InputError) as caught:
        preprocess_upload(encode(Image.new("RGB", (64, 64), (240, 240, 240))), "blank.png")
    assert caught.value.status == 422
    assert "'blank.png' is blank" in caught.value.message
