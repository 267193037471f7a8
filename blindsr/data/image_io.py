"""Image files in and out: the one place where OpenCV's BGR/uint layout becomes RGB float in [0, 1].

:func:`read_image` replaces BasicSR's ``imfrombytes``, which returns ``None`` for a corrupt file (the
crash comes later, far from the file) and silently drops 16-bit depth. Here every image is decoded with
``cv2.IMREAD_UNCHANGED`` and converted explicitly: 8-bit / 255, 16-bit / 65535, grayscale replicated
to three channels, the alpha channel of gray+alpha and RGBA images dropped (transparent pixels keep
their stored colour; nothing is composited). Anything else is an :class:`ImageReadError` naming the file.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

from basicsr.utils import scandir  # blindsr/__init__.py has applied the compat shim by now

from blindsr.data_root import missing_hint

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp')
_MAX_VALUE = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}


class ImageReadError(ValueError):
    """An image file is missing, empty, corrupt or of a layout blindsr does not read."""


def _name(source: str | Path | bytes, name: str | None) -> str:
    return name or ('<bytes>' if isinstance(source, bytes) else str(source))


def read_raw(source: str | Path | bytes, name: str | None = None) -> np.ndarray:
    """Decode ``source`` (a path or encoded bytes) as OpenCV does, unchanged (BGR[A], uint8/uint16).

    ``name`` is what error messages call the image (default: the path, or ``<bytes>``).
    """
    name = _name(source, name)
    if isinstance(source, bytes):
        data = source
    else:
        try:
            data = Path(source).read_bytes()
        except OSError as err:
            raise ImageReadError(f'Cannot read image {name}: {err}') from err
    if not data:
        raise ImageReadError(f'Cannot read image {name}: the file is empty.')
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ImageReadError(f'Cannot decode image {name}: corrupt or not an image format OpenCV reads.')
    return img


def read_image(source: str | Path | bytes, name: str | None = None) -> np.ndarray:
    """Read an image as HWC RGB float32 in [0, 1] (see the module docstring for the conversions)."""
    name = _name(source, name)
    return to_rgb_float(read_raw(source, name), name)


def to_rgb_float(img: np.ndarray, name: str) -> np.ndarray:
    """Decoded pixels (:func:`read_raw`) as HWC RGB float32 in [0, 1]; ``name`` is the image in errors."""
    return to_float(to_rgb(img, name))


def to_rgb(img: np.ndarray, name: str) -> np.ndarray:
    """Decoded pixels (:func:`read_raw`) as HWC RGB in their own 8- or 16-bit type (colour images: a view),
    checked as :func:`to_rgb_float` checks them. Cropping these before :func:`to_float` gives the same
    values as cropping the float image, converting only the pixels kept (what training crops do)."""
    if img.dtype not in _MAX_VALUE:
        raise ImageReadError(f'Image {name} has pixel type {img.dtype}; '
                             'only 8-bit and 16-bit images are read.')
    channels = 1 if img.ndim == 2 else img.shape[2]
    if channels in (1, 2):  # gray, gray + alpha
        return np.repeat(img.reshape(*img.shape[:2], -1)[..., :1], 3, axis=2)
    if channels in (3, 4):  # BGR, BGRA
        return img[..., 2::-1]
    raise ImageReadError(f'Image {name} has {channels} channels; only 1 (gray), 2 (gray+alpha), '
                         '3 (colour) and 4 (colour+alpha) are read.')


def to_float(img: np.ndarray) -> np.ndarray:
    """8- or 16-bit pixels (:func:`to_rgb`) as float32 in [0, 1]: / 255 or / 65535."""
    return img.astype(np.float32) / np.float32(_MAX_VALUE[img.dtype])


def write_image(path: str | Path, img: np.ndarray) -> None:
    """Write an HWC RGB (or HW gray) float image in [0, 1] as 8-bit (rounded, clipped), creating folders.

    The format follows the suffix (OpenCV's encoders; ``.png`` is lossless).
    """
    pixels = np.clip(np.rint(np.asarray(img, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)
    if pixels.ndim == 3:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
    write_raw(path, pixels)


def write_raw(path: str | Path, pixels: np.ndarray) -> None:
    """Encode pixels in OpenCV's layout (HW gray, HWC BGR or BGRA; uint8 or uint16) by the suffix of ``path``
    and write them, creating folders (the counterpart of :func:`read_raw`)."""
    path = Path(path)
    ok, encoded = cv2.imencode(path.suffix, pixels)
    if not ok:
        raise ValueError(f'OpenCV cannot encode an image as {path.suffix!r} for {path}.')
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encoded.tobytes())


def list_images(folder: str | Path, prepared_by: str | None = None) -> list[Path]:
    """The image files directly in ``folder`` (by extension, any case; hidden files skipped), sorted.

    ``prepared_by`` (a dataset's option of that name) is the command that makes the folder; a missing
    folder's error says it.
    """
    folder = Path(folder)
    if not folder.is_dir():
        how = f'; make it with: {prepared_by}' if prepared_by else '.'
        raise FileNotFoundError(f'Image folder {folder} does not exist{missing_hint(folder)}{how}')
    paths = sorted(Path(p) for p in scandir(str(folder), full_path=True)
                   if Path(p).suffix.lower() in IMAGE_EXTENSIONS)
    if not paths:
        raise FileNotFoundError(f"Image folder {folder} holds no images ({', '.join(IMAGE_EXTENSIONS)}).")
    return paths


def image_size(path: str | Path) -> tuple[int, int]:
    """``(height, width)`` of an image file, from its header only (fast; the pixels are not decoded)."""
    try:
        with Image.open(path) as img:
            return img.height, img.width
    except (OSError, ValueError) as err:
        raise ImageReadError(f'Cannot read the header of image {path}: {err}') from err


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """HWC RGB float image -> CHW float32 tensor (a contiguous copy)."""
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1), dtype=np.float32))


def to_pixel_tensor(img: np.ndarray) -> torch.Tensor:
    """HWC RGB pixels (:func:`to_rgb`) -> CHW tensor for a training batch: 8-bit stays uint8 (a quarter of
    float32's bytes through the DataLoader, pinned memory and the copy to the device; :func:`as_float`
    converts it there), 16-bit becomes float32 in [0, 1] (torch has little uint16 support)."""
    if img.dtype == np.uint8:
        return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))
    return to_tensor(to_float(img))


def as_float(x: torch.Tensor) -> torch.Tensor:
    """An image tensor as float in [0, 1]: uint8 pixels / 255 (in float32, on their device), float as given."""
    return x.float().div_(255) if x.dtype == torch.uint8 else x
