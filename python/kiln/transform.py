"""kiln.transform (jt.transform): Jittor's image transforms.

Image operations take PIL images and give PIL images back, as in Jittor (and
torchvision's PIL backend): Resize, CenterCrop, RandomCrop, flips, Pad,
RandomResizedCrop, FiveCrop/TenCrop, RandomRotation, RandomAffine,
RandomPerspective, ColorJitter and the adjust_* functions, RandomGray. A
jt.Var (or anything that is not a PIL image or a NumPy array) is turned into a
PIL image first with to_pil_image, as Jittor does.

NumPy arrays keep kiln's array path in the geometric transforms that kiln
always had (Resize, CenterCrop, RandomCrop, RandomHorizontalFlip,
RandomVerticalFlip, Pad): an array comes back as an array of the same layout
(HW, HWC, or CHW when the first axis is clearly the channel axis) and dtype.

ToTensor/to_tensor gives CHW NumPy arrays (uint8 scaled to [0, 1]); Gray gives
float arrays; ImageNormalize/Normalize/image_normalize work on CHW arrays and
jt.Vars. Randomness comes from Python's `random` module, except RandomCrop's
window, which (as in Jittor) comes from NumPy's global generator.
"""
import math
import numbers
import random
import warnings
from collections.abc import Sequence

import numpy as np


class _NoPillow:
    """Stands for Pillow's modules where it is not installed: kiln imports,
    array transforms work, and what needs PIL says so when it is used."""

    def __init__(self, name):
        self._name = name

    def __getattr__(self, attr):
        raise ImportError(f"kiln.transform: {self._name}.{attr} needs Pillow, which is not installed "
                          "(Debian: apt install python3-pil; PyPI: pip install pillow)")


try:
    from PIL import Image, ImageEnhance, ImageOps
    _HAVE_PIL = True
except ImportError:
    Image, ImageEnhance, ImageOps = _NoPillow("PIL.Image"), _NoPillow("PIL.ImageEnhance"), _NoPillow("PIL.ImageOps")
    _HAVE_PIL = False

from ._core import Var, array as _var_from_array

__all__ = [
    # conversions
    "to_tensor", "pil_to_tensor", "to_pil_image", "to_array", "ToTensor", "ToPILImage",
    # functional image operations (PIL images)
    "crop", "resize", "center_crop", "crop_and_resize", "resized_crop", "hflip", "vflip", "pad",
    "gray", "five_crop", "ten_crop", "rotate", "affine", "perspective",
    "adjust_brightness", "adjust_contrast", "adjust_saturation", "adjust_hue", "adjust_gamma",
    "image_normalize",
    # transform objects
    "Compose", "Lambda", "RandomApply", "RandomChoice", "RandomOrder",
    "Crop", "Resize", "CenterCrop", "RandomCrop", "RandomCropAndResize", "RandomResizedCrop",
    "RandomSizedCrop", "FiveCrop", "TenCrop", "Pad",
    "RandomHorizontalFlip", "RandomVerticalFlip", "RandomRotation", "RandomAffine",
    "RandomPerspective", "ColorJitter", "Gray", "RandomGray",
    "ImageNormalize", "Normalize",
]

if _HAVE_PIL:
    # Pillow >= 9.1 names its constants in enums; older releases only have them on Image.
    _RESAMPLING = getattr(Image, "Resampling", Image)
    _TRANSPOSE = getattr(Image, "Transpose", Image)
    _TRANSFORM = getattr(Image, "Transform", Image)
    _FILTERS_BY_NAME = {
        "nearest": _RESAMPLING.NEAREST, "bilinear": _RESAMPLING.BILINEAR,
        "bicubic": _RESAMPLING.BICUBIC, "box": _RESAMPLING.BOX,
        "hamming": _RESAMPLING.HAMMING, "lanczos": _RESAMPLING.LANCZOS,
    }
else:  # Pillow's filter numbers, for the defaults below
    _TRANSPOSE = _TRANSFORM = Image
    _FILTERS_BY_NAME = {"nearest": 0, "lanczos": 1, "bilinear": 2, "bicubic": 3, "box": 4, "hamming": 5}

NEAREST, BILINEAR, BICUBIC = (_FILTERS_BY_NAME[n] for n in ("nearest", "bilinear", "bicubic"))
# kiln's own array resize knows these two; PIL filters map onto them by name.
_ARRAY_RESIZE_MODES = ("nearest", "bilinear")

# Channel counts an image can have; used to tell the channel axis of an array.
_CHANNEL_COUNTS = (1, 2, 3, 4)


# ---------------------------------------------------------------- type helpers

def _is_pil_image(img):
    return _HAVE_PIL and isinstance(img, Image.Image)


def _require_pil(img, fn):
    if not _is_pil_image(img):
        raise TypeError(f"{fn}: img should be a PIL Image, got {type(img).__name__}")


def _as_pil(img):
    """PIL images pass; anything else is converted the way Jittor's transforms do."""
    return img if _is_pil_image(img) else to_pil_image(img)


def _setup_size(size, fn):
    """An int or a 1/2-sequence as (h, w)."""
    if isinstance(size, numbers.Number):
        return int(size), int(size)
    if isinstance(size, Sequence) and len(size) == 1:
        return int(size[0]), int(size[0])
    if not isinstance(size, Sequence) or len(size) != 2:
        raise ValueError(f"{fn}: size should be an int or a sequence (h, w), got {size!r}")
    return int(size[0]), int(size[1])


def _is_chw_array(a):
    """Whether a 3-D array is laid out CHW rather than HWC.

    Images are HWC unless the first axis is a channel count and the last one
    cannot be (Jittor's to_pil_image rule), e.g. (3, 32, 32) but not (4, 4, 3)."""
    return a.ndim == 3 and a.shape[0] in _CHANNEL_COUNTS and a.shape[2] not in _CHANNEL_COUNTS


def to_array(img):
    """An image (PIL image, jt.Var or array) as a NumPy array (HW or HWC for PIL images)."""
    if isinstance(img, np.ndarray):
        return img
    if isinstance(img, Var):
        return img.numpy()
    return np.asarray(img)


# ----------------------------------------------------------------- conversions

# Single-channel arrays have one PIL mode per dtype; other dtypes have none.
_MODE_OF_1_CHANNEL_DTYPE = {np.dtype(np.uint8): "L", np.dtype(np.int16): "I;16",
                            np.dtype(np.int32): "I", np.dtype(np.float32): "F"}
# Modes that multi-channel uint8 arrays can be read as; the first is the default.
_MODES_BY_CHANNELS = {2: ("LA",), 3: ("RGB", "YCbCr", "HSV"), 4: ("RGBA", "CMYK", "RGBX")}


def to_pil_image(pic, mode=None):
    """A jt.Var or NumPy array (HW, HWC, or CHW when clearly so) as a PIL image.

    One channel: uint8 -> 'L', int16 -> 'I;16', int32 -> 'I', float32 -> 'F'.
    2/3/4 channels must be uint8 ('LA'/'RGB'/'RGBA' by default, or the given
    mode); float arrays of 2-4 channels are taken as [0, 1] images and become
    uint8 by x * 255, truncated (as Jittor does)."""
    if isinstance(pic, Var):
        pic = pic.numpy()
    if not isinstance(pic, np.ndarray):
        raise TypeError(f"to_pil_image: pic should be a jt.Var or np.ndarray, "
                        f"got {type(pic).__name__}")
    if pic.ndim not in (2, 3):
        raise ValueError(f"to_pil_image: pic should be 2/3 dimensional (HW, HWC or CHW), "
                         f"got {pic.ndim} dimensions (shape {pic.shape})")
    if pic.ndim == 2:
        pic = pic[:, :, None]
    elif _is_chw_array(pic):
        pic = pic.transpose(1, 2, 0)
    channels = pic.shape[2]
    if channels == 1:
        return _one_channel_to_pil(pic[:, :, 0], mode)
    if channels not in _MODES_BY_CHANNELS:
        raise ValueError(f"to_pil_image: an image has 1 to 4 channels, got {channels} "
                         f"(shape {pic.shape})")
    return _channels_to_pil(pic, mode)


def _one_channel_to_pil(plane, mode):
    expected = _MODE_OF_1_CHANNEL_DTYPE.get(plane.dtype)
    if expected is None:
        raise TypeError(f"to_pil_image: single-channel {plane.dtype} arrays are not supported; "
                        f"expected one of uint8, int16, int32, float32")
    if mode is not None and mode != expected:
        raise ValueError(f"to_pil_image: mode {mode!r} does not fit a single-channel "
                         f"{plane.dtype} array; expected {expected!r}")
    return Image.fromarray(np.ascontiguousarray(plane), mode=expected)


def _channels_to_pil(pic, mode):
    channels = pic.shape[2]
    permitted = _MODES_BY_CHANNELS[channels]
    if mode is not None and mode not in permitted:
        raise ValueError(f"to_pil_image: mode {mode!r} does not fit a {channels}-channel image; "
                         f"expected one of {list(permitted)}")
    if pic.dtype.kind == "f":
        # Clipped first: out-of-range values would otherwise wrap around in uint8.
        pic = (np.clip(pic, 0, 1) * 255).astype(np.uint8)
    if pic.dtype != np.uint8:
        raise TypeError(f"to_pil_image: {channels}-channel {pic.dtype} arrays are not supported; "
                        f"expected uint8 or a float array in [0, 1]")
    return Image.fromarray(np.ascontiguousarray(pic), mode=mode or permitted[0])


def _is_hwc_for_tensor(a):
    """Whether to_tensor should move the channels of a 3-D array to the front.

    Jittor's to_tensor takes arrays as CHW already; kiln also accepts HWC
    images, recognised by a last axis that is a channel count and shorter than
    the first, e.g. (32, 32, 3) or (4, 6, 3) but not (3, 4, 4) or (4, 4, 4)."""
    return a.shape[2] in _CHANNEL_COUNTS and a.shape[2] < a.shape[0]


def to_tensor(pic):
    """An image as a CHW NumPy array; uint8 data is scaled to float32 in [0, 1].

    PIL images: 'I' -> int32, 'I;16' -> int16, 'F' -> float32, other modes ->
    float32 / 255. Arrays: HW -> 1HW; CHW stays (HWC is transposed, see
    _is_hwc_for_tensor); other dtypes keep their values. A jt.Var is returned
    as it is; a tuple of images (FiveCrop, TenCrop) becomes one stacked array."""
    if isinstance(pic, Var):
        return pic
    if isinstance(pic, tuple):
        return np.stack([to_tensor(p) for p in pic])
    if _is_pil_image(pic):
        return _pil_to_chw(pic)
    if not isinstance(pic, np.ndarray):
        raise TypeError(f"to_tensor: pic should be a PIL Image or np.ndarray, "
                        f"got {type(pic).__name__}")
    if pic.ndim not in (2, 3):
        raise ValueError(f"to_tensor: pic should be 2/3 dimensional, got {pic.ndim} dimensions "
                         f"(shape {pic.shape})")
    if pic.ndim == 2:
        pic = pic[None]
    elif _is_hwc_for_tensor(pic):
        pic = np.ascontiguousarray(pic.transpose(2, 0, 1))
    return _scale_uint8(pic)


def _scale_uint8(a):
    # A float32 division is correctly rounded, unlike multiplying by a rounded 1/255.
    return a.astype(np.float32) / np.float32(255) if a.dtype == np.uint8 else a


# Modes whose pixels are not 8-bit, read with the dtype that holds them.
_DTYPE_OF_MODE = {"I": np.int32, "I;16": np.int16, "F": np.float32}


def _pil_to_chw(img):
    a = np.asarray(img, dtype=_DTYPE_OF_MODE.get(img.mode, np.uint8))
    if img.mode == "1":
        # 1-bit pixels read as 0/1; as 8-bit values they are 0/255, so that /255 gives 0/1.
        a = a * np.uint8(255)
    width, height = img.size
    a = a.reshape(height, width, len(img.getbands())).transpose(2, 0, 1)
    return _scale_uint8(np.ascontiguousarray(a))


pil_to_tensor = to_tensor


class ToTensor:
    """to_tensor as a transform."""

    def __call__(self, pic):
        return to_tensor(pic)

    def __repr__(self):
        return "ToTensor()"


class ToPILImage:
    """to_pil_image with a fixed mode (None: chosen from dtype and channels)."""

    def __init__(self, mode=None):
        self.mode = mode

    def __call__(self, pic):
        return to_pil_image(pic, self.mode)

    def __repr__(self):
        return "ToPILImage()" if self.mode is None else f"ToPILImage(mode={self.mode})"


# ------------------------------------------------- functional ops on PIL images

def _pil_filter(interpolation, fn):
    """A PIL resampling filter from a PIL constant or a name such as 'bilinear'."""
    if isinstance(interpolation, str):
        if interpolation not in _FILTERS_BY_NAME:
            raise ValueError(f"{fn}: unknown interpolation {interpolation!r}; "
                             f"expected one of {sorted(_FILTERS_BY_NAME)} or a PIL filter")
        return _FILTERS_BY_NAME[interpolation]
    return interpolation


def crop(img, top, left, height, width):
    """The height x width window of img at (top, left); outside the image is black."""
    _require_pil(img, "crop")
    return img.crop((left, top, left + width, top + height))


def resize(img, size, interpolation=BILINEAR):
    """img at size (h, w); an int size is the shorter side, keeping the aspect ratio."""
    _require_pil(img, "resize")
    if isinstance(size, Sequence) and len(size) == 1:
        size = size[0]
    resample = _pil_filter(interpolation, "resize")
    if isinstance(size, numbers.Number):
        return _resize_shorter_side(img, int(size), resample)
    if not isinstance(size, Sequence) or len(size) != 2:
        raise TypeError(f"resize: size should be an int or a sequence (h, w), got {size!r}")
    return img.resize((int(size[1]), int(size[0])), resample)


def _resize_shorter_side(img, size, resample):
    w, h = img.size
    if min(w, h) == size:
        return img
    if w < h:
        return img.resize((size, int(round(size * h / w))), resample)
    return img.resize((int(round(size * w / h)), size), resample)


def center_crop(img, output_size):
    """The central output_size (int or (h, w)) window of img."""
    _require_pil(img, "center_crop")
    h, w = _setup_size(output_size, "center_crop")
    width, height = img.size
    return crop(img, int(round((height - h) / 2)), int(round((width - w) / 2)), h, w)


def resized_crop(img, top, left, height, width, size, interpolation=BILINEAR):
    """crop, then resize to size."""
    _require_pil(img, "resized_crop")
    return resize(crop(img, top, left, height, width), size, interpolation)


crop_and_resize = resized_crop


def hflip(img):
    _require_pil(img, "hflip")
    return img.transpose(_TRANSPOSE.FLIP_LEFT_RIGHT)


def vflip(img):
    _require_pil(img, "vflip")
    return img.transpose(_TRANSPOSE.FLIP_TOP_BOTTOM)


def gray(img, num_output_channels):
    """img in grayscale: mode 'L' (1 channel) or 'RGB' with r == g == b (3 channels)."""
    _require_pil(img, "gray")
    if num_output_channels not in (1, 3):
        raise ValueError(f"gray: num_output_channels should be 1 or 3, "
                         f"got {num_output_channels!r}")
    gray_img = img.convert("L")
    return gray_img if num_output_channels == 1 else gray_img.convert("RGB")


def _check_factor(value, name, fn):
    if value < 0:
        raise ValueError(f"{fn}: {name} should be non-negative, got {value}")


def adjust_brightness(img, brightness_factor):
    """img with brightness scaled: 0 black, 1 unchanged, 2 twice as bright."""
    _require_pil(img, "adjust_brightness")
    _check_factor(brightness_factor, "brightness_factor", "adjust_brightness")
    return ImageEnhance.Brightness(img).enhance(brightness_factor)


def adjust_contrast(img, contrast_factor):
    """img with contrast scaled about its mean gray: 0 solid gray, 1 unchanged."""
    _require_pil(img, "adjust_contrast")
    _check_factor(contrast_factor, "contrast_factor", "adjust_contrast")
    return ImageEnhance.Contrast(img).enhance(contrast_factor)


def adjust_saturation(img, saturation_factor):
    """img with saturation scaled: 0 grayscale, 1 unchanged, 2 twice as saturated."""
    _require_pil(img, "adjust_saturation")
    _check_factor(saturation_factor, "saturation_factor", "adjust_saturation")
    return ImageEnhance.Color(img).enhance(saturation_factor)


# Modes with no hue; adjust_hue returns them unchanged.
_HUELESS_MODES = ("L", "1", "I", "F", "I;16")


def adjust_hue(img, hue_factor):
    """img with its HSV hue rotated by hue_factor turns (in [-0.5, 0.5])."""
    if not -0.5 <= hue_factor <= 0.5:
        raise ValueError(f"adjust_hue: hue_factor should be in [-0.5, 0.5], got {hue_factor}")
    _require_pil(img, "adjust_hue")
    if img.mode in _HUELESS_MODES:
        return img
    h, s, v = img.convert("HSV").split()
    # Hue is 8-bit and cyclic: a shift of 256 is a full turn.
    shift = int(hue_factor * 255)
    h = h.point([(x + shift) % 256 for x in range(256)])
    out = Image.merge("HSV", (h, s, v)).convert(img.mode)
    if "A" in img.getbands():
        out.putalpha(img.getchannel("A"))
    return out


def adjust_gamma(img, gamma, gain=1):
    """img with intensities I -> 255 * gain * (I / 255) ** gamma."""
    _require_pil(img, "adjust_gamma")
    if gamma < 0:
        raise ValueError(f"adjust_gamma: gamma should be non-negative, got {gamma}")
    # 255 + 1 - 1e-3 so that truncation maps 255 to 255 while spreading the levels evenly.
    table = [int((256 - 1e-3) * gain * (level / 255.0) ** gamma) for level in range(256)]
    rgb = img.convert("RGB").point(table * 3)
    return rgb.convert(img.mode)


def _pad_borders(padding, fn):
    """torchvision's padding (int, (lr, tb) or (l, t, r, b)) as (left, top, right, bottom)."""
    if isinstance(padding, numbers.Number):
        return (int(padding),) * 4
    if isinstance(padding, Sequence) and len(padding) == 2:
        return (int(padding[0]), int(padding[1])) * 2
    if isinstance(padding, Sequence) and len(padding) == 4:
        return tuple(int(p) for p in padding)
    raise ValueError(f"{fn}: padding should be an int or a sequence of 2 or 4 ints, "
                     f"got {padding!r}")


_PADDING_MODES = {"constant": "constant", "edge": "edge", "reflect": "reflect",
                  "symmetric": "symmetric"}


def pad(img, padding, fill=0, padding_mode="constant"):
    """img with borders added (torchvision's Pad).

    padding: int (all sides), (left/right, top/bottom) or (left, top, right,
    bottom). padding_mode: 'constant' (fill), 'edge', 'reflect' or 'symmetric'.
    PIL images give PIL images; arrays (HW, HWC or CHW) give arrays."""
    borders = _pad_borders(padding, "pad")
    if padding_mode not in _PADDING_MODES:
        raise ValueError(f"pad: padding_mode should be one of {list(_PADDING_MODES)}, "
                         f"got {padding_mode!r}")
    if any(b < 0 for b in borders):
        raise ValueError(f"pad: padding should be non-negative, got {padding!r}")
    if isinstance(img, np.ndarray):
        return _pad_array(img, borders, fill, padding_mode)
    img = _as_pil(img)
    if padding_mode == "constant":
        return ImageOps.expand(img, border=borders, fill=_fill_for(img, fill))
    # Multi-band modes (CMYK, YCbCr, ...) need naming; mode '1' arrays are bools,
    # which Pillow reads right only when it infers the mode itself.
    padded = Image.fromarray(_pad_array(np.asarray(img), borders, fill, padding_mode),
                             None if img.mode == "1" else img.mode)
    if img.mode == "P":
        padded.putpalette(img.getpalette())
    return padded


def _pad_array(a, borders, fill, padding_mode):
    if padding_mode == "constant" and not isinstance(fill, numbers.Number):
        raise TypeError(f"pad: fill for arrays should be a number, got {fill!r}")
    left, top, right, bottom = borders
    spatial = [(top, bottom), (left, right)]
    if a.ndim == 2:
        widths = spatial
    elif _is_chw_array(a):
        widths = [(0, 0)] + spatial
    else:
        widths = spatial + [(0, 0)]
    if padding_mode == "constant":
        return np.pad(a, widths, mode="constant", constant_values=fill)
    return np.pad(a, widths, mode=_PADDING_MODES[padding_mode])


def five_crop(img, size):
    """The four corner crops and the central crop of img: (tl, tr, bl, br, center)."""
    _require_pil(img, "five_crop")
    crop_h, crop_w = _setup_size(size, "five_crop")
    width, height = img.size
    if crop_w > width or crop_h > height:
        raise ValueError(f"five_crop: crop size {(crop_h, crop_w)} is bigger than the image "
                         f"{(height, width)}")
    return (crop(img, 0, 0, crop_h, crop_w),
            crop(img, 0, width - crop_w, crop_h, crop_w),
            crop(img, height - crop_h, 0, crop_h, crop_w),
            crop(img, height - crop_h, width - crop_w, crop_h, crop_w),
            center_crop(img, (crop_h, crop_w)))


def ten_crop(img, size, vertical_flip=False):
    """five_crop of img, then five_crop of its mirror image (vertical or horizontal)."""
    _require_pil(img, "ten_crop")
    flipped = vflip(img) if vertical_flip else hflip(img)
    return five_crop(img, size) + five_crop(flipped, size)


def _fill_for(img, fill):
    """A fill value PIL accepts for img: one number per band (0 when fill is None)."""
    if fill is None:
        fill = 0
    bands = len(img.getbands())
    if isinstance(fill, numbers.Number):
        return fill if bands == 1 else (fill,) * bands
    if len(fill) != bands:
        raise ValueError(f"fill {fill!r} should have one value per band of the image "
                         f"({bands} bands)")
    return tuple(fill)


def rotate(img, angle, resample=False, expand=False, center=None, fill=None):
    """img rotated counter-clockwise by angle degrees (PIL's Image.rotate)."""
    _require_pil(img, "rotate")
    resample = _pil_filter(resample or NEAREST, "rotate")
    return img.rotate(angle, resample, expand, center, fillcolor=_fill_for(img, fill))


def _inverse_affine_matrix(center, angle, translate, scale, shear):
    """PIL's output-to-input coefficients for the affine map about center.

    The forward map is x -> C + T + RSS (x - C), RSS = rotation(angle) *
    scale * shear_y * shear_x (torchvision's convention); PIL wants its inverse."""
    rot = math.radians(angle)
    shear_x, shear_y = (math.radians(s) for s in shear)
    rotation = np.array([[math.cos(rot), -math.sin(rot)], [math.sin(rot), math.cos(rot)]])
    along_y = np.array([[1.0, 0.0], [-math.tan(shear_y), 1.0]])
    along_x = np.array([[1.0, -math.tan(shear_x)], [0.0, 1.0]])
    inverse = np.linalg.inv(scale * rotation @ along_y @ along_x)
    c = np.asarray(center, dtype=np.float64)
    offset = c - inverse @ (c + np.asarray(translate, dtype=np.float64))
    return [inverse[0, 0], inverse[0, 1], offset[0], inverse[1, 0], inverse[1, 1], offset[1]]


def affine(img, angle, translate, scale, shear, resample=0, fillcolor=None):
    """img rotated by angle, scaled, sheared (degrees; a number shears along x) and
    translated by (dx, dy), keeping the image centre fixed."""
    _require_pil(img, "affine")
    if not isinstance(translate, (tuple, list)) or len(translate) != 2:
        raise TypeError(f"affine: translate should be a sequence (dx, dy), got {translate!r}")
    if scale <= 0:
        raise ValueError(f"affine: scale should be positive, got {scale}")
    if isinstance(shear, numbers.Number):
        shear = (shear, 0.0)
    if len(shear) != 2:
        raise ValueError(f"affine: shear should be a number or (shear_x, shear_y), got {shear!r}")
    width, height = img.size
    center = (width * 0.5 + 0.5, height * 0.5 + 0.5)
    matrix = _inverse_affine_matrix(center, angle, translate, scale, shear)
    return img.transform(img.size, _TRANSFORM.AFFINE, matrix,
                         _pil_filter(resample or NEAREST, "affine"), fillcolor=fillcolor)


def _perspective_coefficients(startpoints, endpoints):
    """PIL's 8 perspective coefficients mapping each end point back to its start point.

    (x, y) -> ((a x + b y + c) / (g x + h y + 1), (d x + e y + f) / (g x + h y + 1)),
    linear in a..h once multiplied out: two equations per point pair."""
    rows, rhs = [], []
    for (x, y), (u, v) in zip(endpoints, startpoints):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        rhs += [u, v]
    solution = np.linalg.lstsq(np.array(rows, np.float64), np.array(rhs, np.float64), rcond=None)
    return solution[0].tolist()


def perspective(img, startpoints, endpoints, interpolation=BICUBIC):
    """img warped so that the 4 startpoints (corners) move to the 4 endpoints."""
    _require_pil(img, "perspective")
    coefficients = _perspective_coefficients(startpoints, endpoints)
    return img.transform(img.size, _TRANSFORM.PERSPECTIVE, coefficients,
                         _pil_filter(interpolation, "perspective"))


# ----------------------------------------------------- normalisation (CHW data)

def _normalize(img, mean, std, fn):
    """(img - mean) / std per channel of CHW data; uint8 data and PIL images are /255 first."""
    if _is_pil_image(img):
        img = to_tensor(img)
    elif isinstance(img, np.ndarray) and img.dtype == np.uint8:
        img = _scale_uint8(img)
    if not isinstance(img, (np.ndarray, Var)):
        raise TypeError(f"{fn}: img should be a PIL Image, jt.Var or np.ndarray, "
                        f"got {type(img).__name__}")
    if img.ndim < 3:
        raise ValueError(f"{fn}: img should be (..., C, H, W), got shape {tuple(img.shape)}")
    mean, std = _per_channel(mean, img), _per_channel(std, img)
    std_values = std.numpy() if isinstance(std, Var) else std
    if (std_values == 0).any():
        raise ValueError(f"{fn}: std should be non-zero, got {std_values.ravel().tolist()}")
    return (img - mean) / std


def _per_channel(values, img):
    """mean/std in the kind of img (Var or array), shaped to broadcast over C, H, W."""
    if isinstance(img, Var):
        values = values if isinstance(values, Var) else _var_from_array(np.asarray(values))
    else:
        values = values.numpy() if isinstance(values, Var) else np.asarray(values)
    return values.reshape(-1, 1, 1) if values.ndim == 1 else values


def image_normalize(img, mean, std):
    """(img - mean) / std per channel of a CHW image (array, jt.Var or PIL image).

    mean/std: sequences, arrays or jt.Vars of one value per channel (or already
    shaped (C, 1, 1)). PIL images and uint8 arrays are scaled to [0, 1] first."""
    return _normalize(img, mean, std, "image_normalize")


class ImageNormalize:
    """image_normalize with fixed float32 mean and std."""

    def __init__(self, mean, std):
        self.mean = np.asarray(mean, np.float32).reshape(-1, 1, 1)
        self.std = np.asarray(std, np.float32).reshape(-1, 1, 1)

    def __call__(self, img):
        return _normalize(img, self.mean, self.std, "ImageNormalize")


Normalize = ImageNormalize


# ------------------------------------------------------- composing transforms

class Compose:
    """The transforms applied in turn; several arguments are passed to each as a tuple."""

    def __init__(self, transforms):
        self.transforms = transforms

    def __call__(self, *data):
        if len(data) == 1:
            data = data[0]
            for t in self.transforms:
                data = t(data)
            return data
        for t in self.transforms:
            data = t(*data)
        return data


class Lambda:
    """A function as a transform."""

    def __init__(self, lambd):
        if not callable(lambd):
            raise TypeError(f"Lambda: expected a callable, got {type(lambd).__name__}")
        self.lambd = lambd

    def __call__(self, img):
        return self.lambd(img)

    def __repr__(self):
        return "Lambda()"


def _transform_list(transforms, cls):
    if not isinstance(transforms, (list, tuple)):
        raise TypeError(f"{cls}: transforms should be a list or tuple, "
                        f"got {type(transforms).__name__}")
    return transforms


class RandomApply:
    """All of the transforms with probability p, else none."""

    def __init__(self, transforms, p=0.5):
        self.transforms = _transform_list(transforms, "RandomApply")
        self.p = p

    def __call__(self, img):
        if self.p < random.random():
            return img
        for t in self.transforms:
            img = t(img)
        return img


class RandomOrder:
    """All of the transforms, in a random order."""

    def __init__(self, transforms):
        self.transforms = _transform_list(transforms, "RandomOrder")

    def __call__(self, img):
        order = list(range(len(self.transforms)))
        random.shuffle(order)
        for i in order:
            img = self.transforms[i](img)
        return img


class RandomChoice:
    """One of the transforms, picked at random."""

    def __init__(self, transforms):
        self.transforms = _transform_list(transforms, "RandomChoice")

    def __call__(self, img):
        return random.choice(self.transforms)(img)


# ------------------------------------------------ kiln's array path (NumPy data)

def _on_hwc(a, op):
    """op (on an HW or HWC array) applied to a, which keeps its own layout."""
    if _is_chw_array(a):
        return np.ascontiguousarray(op(a.transpose(1, 2, 0)).transpose(2, 0, 1))
    return op(a)


def _array_resize_mode(mode):
    """kiln's array resize mode ('nearest' or 'bilinear') for a name or a PIL filter."""
    if isinstance(mode, str):
        name = mode
    else:
        name = next((n for n, f in _FILTERS_BY_NAME.items() if f == mode), repr(mode))
    if name not in _ARRAY_RESIZE_MODES:
        raise ValueError(f"Resize: arrays are resized with {list(_ARRAY_RESIZE_MODES)} "
                         f"interpolation, got {name!r}; convert to a PIL image for others")
    return name


def _resize_hwc(a, h, w, mode):
    """Resize an HW/HWC array; bilinear is torch's interpolate(align_corners=False)."""
    H, W = a.shape[:2]
    if (H, W) == (h, w):
        return a
    if mode == "nearest":
        ys = np.minimum((np.arange(h) * (H / h)).astype(np.int64), H - 1)
        xs = np.minimum((np.arange(w) * (W / w)).astype(np.int64), W - 1)
        return a[ys][:, xs]
    f = a.astype(np.float32)
    sy = np.maximum((np.arange(h) + 0.5) * (H / h) - 0.5, 0)
    sx = np.maximum((np.arange(w) + 0.5) * (W / w) - 0.5, 0)
    y0 = np.minimum(np.floor(sy).astype(np.int64), H - 1)
    x0 = np.minimum(np.floor(sx).astype(np.int64), W - 1)
    y1, x1 = np.minimum(y0 + 1, H - 1), np.minimum(x0 + 1, W - 1)
    ly = (sy - y0).astype(np.float32).reshape((-1, 1) + (1,) * (a.ndim - 2))
    lx = (sx - x0).astype(np.float32).reshape((1, -1) + (1,) * (a.ndim - 2))
    top = f[y0][:, x0] * (1 - lx) + f[y0][:, x1] * lx
    bot = f[y1][:, x0] * (1 - lx) + f[y1][:, x1] * lx
    out = top * (1 - ly) + bot * ly
    if a.dtype == np.uint8:
        return np.clip(np.round(out), 0, 255).astype(np.uint8)
    return out.astype(a.dtype)


def _shorter_side_size(H, W, size):
    """(h, w) with the shorter side at size, keeping the aspect ratio (kiln's array rule)."""
    if H <= W:
        return size, max(1, int(size * W / H))
    return max(1, int(size * H / W)), size


def _random_window(H, W, h, w, cls):
    if H < h or W < w:
        # AssertionError, as Jittor (whose check is an assert) raises and its tests expect.
        raise AssertionError(f"{cls}: crop size {(h, w)} exceeds the image size {(H, W)}")
    return np.random.randint(0, H - h + 1), np.random.randint(0, W - w + 1)


# ----------------------------------------------------------- geometric transforms

class Crop:
    """The fixed window (top, left, height, width)."""

    def __init__(self, top, left, height, width):
        self.top, self.left, self.height, self.width = top, left, height, width

    def __call__(self, img):
        return crop(_as_pil(img), self.top, self.left, self.height, self.width)


class Resize:
    """Resize to size.

    PIL images (Jittor's Resize): an int size gives a size x size image, a
    sequence gives (h, w). NumPy arrays (kiln): an int size is the shorter side,
    keeping the aspect ratio. mode: a PIL filter or its name ('bilinear',
    'nearest', ...); arrays support 'nearest' and 'bilinear'."""

    def __init__(self, size, mode=BILINEAR):
        self.size, self.mode = size, mode
        _setup_size(size, "Resize")        # reject a bad size now rather than per image

    def __call__(self, img):
        if isinstance(img, np.ndarray):
            return _on_hwc(img, self._resize_hwc)
        return resize(_as_pil(img), _setup_size(self.size, "Resize"),
                      _pil_filter(self.mode, "Resize"))

    def _resize_hwc(self, a):
        H, W = a.shape[:2]
        if isinstance(self.size, numbers.Number):
            h, w = _shorter_side_size(H, W, int(self.size))
        else:
            h, w = _setup_size(self.size, "Resize")
        return _resize_hwc(a, h, w, _array_resize_mode(self.mode))


class CenterCrop:
    """The central size (int or (h, w)) window; for PIL images, outside the image is black."""

    def __init__(self, size):
        self.size = _setup_size(size, "CenterCrop")

    def __call__(self, img):
        h, w = self.size
        if isinstance(img, np.ndarray):
            def central(a):
                H, W = a.shape[:2]
                top, left = max(0, (H - h) // 2), max(0, (W - w) // 2)
                return a[top:top + h, left:left + w]
            return _on_hwc(img, central)
        img = _as_pil(img)
        width, height = img.size
        # Jittor's class truncates the offset (its center_crop function rounds it).
        return crop(img, int((height - h) / 2), int((width - w) / 2), h, w)


class RandomCrop:
    """A random size (int or (h, w)) window.

    padding (kiln): int or (pad_h, pad_w) added on both sides first, with fill;
    pad_if_needed: pad the bottom/right of an image smaller than size. A crop
    larger than the (padded) image raises AssertionError, as in Jittor."""

    def __init__(self, size, padding=None, pad_if_needed=False, fill=0):
        self.size = _setup_size(size, "RandomCrop")
        self.padding, self.pad_if_needed, self.fill = padding, pad_if_needed, fill

    def __call__(self, img):
        if not isinstance(img, np.ndarray):
            img = _as_pil(img)
        if self.padding:
            pad_h, pad_w = _setup_size(self.padding, "RandomCrop padding")
            img = pad(img, (pad_w, pad_h), self.fill)
        h, w = self.size
        H, W = _image_hw(img)
        if self.pad_if_needed and (H < h or W < w):
            img = pad(img, (0, 0, max(0, w - W), max(0, h - H)), self.fill)
            H, W = _image_hw(img)
        top, left = _random_window(H, W, h, w, "RandomCrop")
        if isinstance(img, np.ndarray):
            return _on_hwc(img, lambda a: a[top:top + h, left:left + w])
        return crop(img, top, left, h, w)


def _image_hw(img):
    """(height, width) of a PIL image or an HW/HWC/CHW array."""
    if _is_pil_image(img):
        return img.size[1], img.size[0]
    return (img.shape[1], img.shape[2]) if _is_chw_array(img) else img.shape[:2]


class RandomResizedCrop:
    """A random window of random area (scale of the image) and aspect ratio,
    resized to size (int or (h, w)); the Inception-style training crop."""

    def __init__(self, size, scale=(0.08, 1.0), ratio=(3.0 / 4.0, 4.0 / 3.0),
                 interpolation=BILINEAR):
        self.size = _setup_size(size, type(self).__name__)
        if scale[0] > scale[1] or ratio[0] > ratio[1]:
            warnings.warn(f"{type(self).__name__}: scale and ratio should be (min, max), "
                          f"got scale={scale}, ratio={ratio}")
        self.scale, self.ratio, self.interpolation = scale, ratio, interpolation

    @staticmethod
    def get_params(img, scale, ratio):
        """(top, left, height, width) of a random window of img."""
        width, height = img.size
        area = height * width
        log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
        for _ in range(10):
            target_area = random.uniform(*scale) * area
            aspect_ratio = math.exp(random.uniform(*log_ratio))
            w = int(round(math.sqrt(target_area * aspect_ratio)))
            h = int(round(math.sqrt(target_area / aspect_ratio)))
            if 0 < w <= width and 0 < h <= height:
                return random.randint(0, height - h), random.randint(0, width - w), h, w
        # No luck in 10 tries: the central window with the aspect ratio clamped to ratio.
        in_ratio = width / height
        if in_ratio < min(ratio):
            w, h = width, int(round(width / min(ratio)))
        elif in_ratio > max(ratio):
            w, h = int(round(height * max(ratio))), height
        else:
            w, h = width, height
        return (height - h) // 2, (width - w) // 2, h, w

    def __call__(self, img):
        img = _as_pil(img)
        top, left, h, w = self.get_params(img, self.scale, self.ratio)
        return resized_crop(img, top, left, h, w, self.size, self.interpolation)


RandomSizedCrop = RandomResizedCrop


class RandomCropAndResize(RandomResizedCrop):
    """RandomResizedCrop that rejects unordered scale/ratio bounds (Jittor's older name)."""

    def __init__(self, size, scale=(0.08, 1.0), ratio=(3.0 / 4.0, 4.0 / 3.0),
                 interpolation=BILINEAR):
        if scale[0] > scale[1] or ratio[0] > ratio[1]:
            raise ValueError(f"RandomCropAndResize: scale and ratio should be (min, max), "
                             f"got scale={scale}, ratio={ratio}")
        super().__init__(size, scale, ratio, interpolation)


class FiveCrop:
    """five_crop: a tuple of the 4 corner crops and the central crop."""

    def __init__(self, size):
        self.size = _setup_size(size, "FiveCrop")

    def __call__(self, img):
        return five_crop(_as_pil(img), self.size)


class TenCrop:
    """ten_crop: FiveCrop of the image and of its mirror image."""

    def __init__(self, size, vertical_flip=False):
        self.size = _setup_size(size, "TenCrop")
        self.vertical_flip = vertical_flip

    def __call__(self, img):
        return ten_crop(_as_pil(img), self.size, self.vertical_flip)


class Pad:
    """pad with fixed padding, fill and padding_mode (torchvision's Pad)."""

    def __init__(self, padding, fill=0, padding_mode="constant"):
        _pad_borders(padding, "Pad")       # reject a bad padding now rather than per image
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"Pad: padding_mode should be one of {list(_PADDING_MODES)}, "
                             f"got {padding_mode!r}")
        self.padding, self.fill, self.padding_mode = padding, fill, padding_mode

    def __call__(self, img):
        return pad(img, self.padding, self.fill, self.padding_mode)


class _RandomFlip:
    """Flip with probability p: PIL images with `flip`, arrays along `array_axis` of HWC."""
    flip = None
    array_axis = None

    def __init__(self, p=0.5):
        self.p = p

    def __call__(self, img):
        if not isinstance(img, np.ndarray):
            img = _as_pil(img)
        if random.random() >= self.p:
            return img
        if isinstance(img, np.ndarray):
            return _on_hwc(img, lambda a: np.flip(a, self.array_axis).copy())
        return self.flip(img)


class RandomHorizontalFlip(_RandomFlip):
    """Mirror left-right with probability p."""
    flip = staticmethod(hflip)
    array_axis = 1


class RandomVerticalFlip(_RandomFlip):
    """Mirror top-bottom with probability p."""
    flip = staticmethod(vflip)
    array_axis = 0


def _symmetric_range(value, name, cls):
    """A number d as (-d, d) (d must be >= 0), or a 2-sequence as it is."""
    if isinstance(value, numbers.Number):
        if value < 0:
            raise ValueError(f"{cls}: {name} as a single number should be non-negative, "
                             f"got {value}")
        return (-value, value)
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ValueError(f"{cls}: {name} should be a number or a sequence (min, max), "
                         f"got {value!r}")
    return tuple(value)


class RandomRotation:
    """rotate by an angle drawn uniformly from degrees (d: (-d, d); or (min, max))."""

    def __init__(self, degrees, resample=False, expand=False, center=None, fill=None):
        self.degrees = _symmetric_range(degrees, "degrees", "RandomRotation")
        self.resample, self.expand, self.center, self.fill = resample, expand, center, fill

    @staticmethod
    def get_params(degrees):
        return random.uniform(degrees[0], degrees[1])

    def __call__(self, img):
        img = _as_pil(img)
        angle = self.get_params(self.degrees)
        return rotate(img, angle, self.resample, self.expand, self.center, self.fill)


class RandomAffine:
    """affine with random angle (degrees), translation (fractions of the size),
    scale (range) and shear (degrees: d, (min, max) along x, or 4 values for x and y)."""

    def __init__(self, degrees, translate=None, scale=None, shear=None, resample=False,
                 fillcolor=0):
        self.degrees = _symmetric_range(degrees, "degrees", "RandomAffine")
        self.translate = self._check_translate(translate)
        self.scale = self._check_scale(scale)
        self.shear = self._check_shear(shear)
        self.resample, self.fillcolor = resample, fillcolor

    @staticmethod
    def _check_translate(translate):
        if translate is None:
            return None
        if not isinstance(translate, (tuple, list)) or len(translate) != 2:
            raise ValueError(f"RandomAffine: translate should be (max_dx, max_dy), "
                             f"got {translate!r}")
        if not all(0.0 <= t <= 1.0 for t in translate):
            raise ValueError(f"RandomAffine: translate fractions should be in [0, 1], "
                             f"got {translate!r}")
        return translate

    @staticmethod
    def _check_scale(scale):
        if scale is None:
            return None
        if not isinstance(scale, (tuple, list)) or len(scale) != 2:
            raise ValueError(f"RandomAffine: scale should be (min, max), got {scale!r}")
        if not all(s > 0 for s in scale):
            raise ValueError(f"RandomAffine: scale values should be positive, got {scale!r}")
        return scale

    @staticmethod
    def _check_shear(shear):
        if shear is None:
            return None
        if isinstance(shear, numbers.Number):
            return _symmetric_range(shear, "shear", "RandomAffine")
        if not isinstance(shear, (tuple, list)) or len(shear) not in (2, 4):
            raise ValueError(f"RandomAffine: shear should be a number or a sequence of "
                             f"2 or 4 values, got {shear!r}")
        return tuple(shear)

    @staticmethod
    def get_params(degrees, translate, scale_ranges, shears, img_size):
        """(angle, (dx, dy), scale, (shear_x, shear_y)) for an image of img_size (w, h)."""
        angle = random.uniform(degrees[0], degrees[1])
        if translate is not None:
            max_dx, max_dy = translate[0] * img_size[0], translate[1] * img_size[1]
            translations = (round(random.uniform(-max_dx, max_dx)),
                            round(random.uniform(-max_dy, max_dy)))
        else:
            translations = (0, 0)
        scale = 1.0 if scale_ranges is None else random.uniform(scale_ranges[0], scale_ranges[1])
        if shears is None:
            shear = (0.0, 0.0)
        elif len(shears) == 2:
            shear = (random.uniform(shears[0], shears[1]), 0.0)
        else:
            shear = (random.uniform(shears[0], shears[1]), random.uniform(shears[2], shears[3]))
        return angle, translations, scale, shear

    def __call__(self, img):
        img = _as_pil(img)
        params = self.get_params(self.degrees, self.translate, self.scale, self.shear, img.size)
        return affine(img, *params, resample=self.resample, fillcolor=self.fillcolor)


class RandomPerspective:
    """With probability p, a perspective warp that moves each corner inwards by up
    to distortion_scale of half the image size."""

    def __init__(self, distortion_scale=0.5, p=0.5, interpolation=BICUBIC):
        self.distortion_scale, self.p, self.interpolation = distortion_scale, p, interpolation

    @staticmethod
    def get_params(width, height, distortion_scale):
        """([corners of the image], [where they move]), both top-left, top-right,
        bottom-right, bottom-left."""
        dx = int(distortion_scale * (width // 2))
        dy = int(distortion_scale * (height // 2))
        left, right = (0, dx), (width - dx - 1, width - 1)
        top, bottom = (0, dy), (height - dy - 1, height - 1)
        endpoints = [(random.randint(*left), random.randint(*top)),
                     (random.randint(*right), random.randint(*top)),
                     (random.randint(*right), random.randint(*bottom)),
                     (random.randint(*left), random.randint(*bottom))]
        startpoints = [(0, 0), (width - 1, 0), (width - 1, height - 1), (0, height - 1)]
        return startpoints, endpoints

    def __call__(self, img):
        img = _as_pil(img)
        if random.random() >= self.p:
            return img
        startpoints, endpoints = self.get_params(img.size[0], img.size[1], self.distortion_scale)
        return perspective(img, startpoints, endpoints, self.interpolation)


# --------------------------------------------------------------- colour transforms

class ColorJitter:
    """adjust_brightness/contrast/saturation/hue in a random order, each with a
    factor drawn uniformly from its range.

    brightness, contrast, saturation: d gives [max(0, 1 - d), 1 + d], or (min, max)
    with 0 <= min <= max. hue: d gives [-d, d], or (min, max) within [-0.5, 0.5]."""

    def __init__(self, brightness=0, contrast=0, saturation=0, hue=0):
        self.brightness = self._check_input(brightness, "brightness")
        self.contrast = self._check_input(contrast, "contrast")
        self.saturation = self._check_input(saturation, "saturation")
        self.hue = self._check_input(hue, "hue", center=0, bound=(-0.5, 0.5),
                                     clip_first_on_zero=False)

    @staticmethod
    def _check_input(value, name, center=1, bound=(0, float("inf")), clip_first_on_zero=True):
        """The factor range for value, or None when it can only give `center` (no change)."""
        if isinstance(value, numbers.Number):
            if value < 0:
                raise ValueError(f"ColorJitter: {name} as a single number should be "
                                 f"non-negative, got {value}")
            value = [center - float(value), center + float(value)]
            if clip_first_on_zero:
                value[0] = max(value[0], 0.0)
        elif isinstance(value, (tuple, list)) and len(value) == 2:
            if not bound[0] <= value[0] <= value[1] <= bound[1]:
                raise ValueError(f"ColorJitter: {name} should be (min, max) within {bound}, "
                                 f"got {value!r}")
        else:
            raise TypeError(f"ColorJitter: {name} should be a number or a sequence (min, max), "
                            f"got {value!r}")
        if value[0] == value[1] == center:
            return None
        return value

    @staticmethod
    def _get_transform(brightness, contrast, saturation, hue):
        """A Compose of the adjustments with freshly drawn factors, in random order."""
        adjustments = [(brightness, adjust_brightness), (contrast, adjust_contrast),
                       (saturation, adjust_saturation), (hue, adjust_hue)]
        transforms = []
        for bounds, adjust in adjustments:
            if bounds is not None:
                factor = random.uniform(bounds[0], bounds[1])
                transforms.append(Lambda(lambda img, f=factor, fn=adjust: fn(img, f)))
        random.shuffle(transforms)
        return Compose(transforms)

    def __call__(self, img):
        img = _as_pil(img)
        return self._get_transform(self.brightness, self.contrast, self.saturation, self.hue)(img)


class Gray:
    """The image in grayscale as float32 in [0, 1]: (1, H, W) for 1 output channel,
    (H, W, 3) for 3 (Jittor's layouts)."""

    def __init__(self, num_output_channels=1):
        if num_output_channels not in (1, 3):
            raise ValueError(f"Gray: num_output_channels should be 1 or 3, "
                             f"got {num_output_channels!r}")
        self.num_output_channels = num_output_channels

    def __call__(self, img):
        luma = np.asarray(_as_pil(img).convert("L"), np.float32) / np.float32(255)
        if self.num_output_channels == 1:
            return luma[None]
        return np.dstack([luma, luma, luma])


class RandomGray:
    """With probability p, gray of the image: 'L' stays 1 channel, others become
    'RGB' with r == g == b."""

    def __init__(self, p=0.1):
        self.p = p

    def __call__(self, img):
        img = _as_pil(img)
        if random.random() < self.p:
            return gray(img, 1 if img.mode == "L" else 3)
        return img
