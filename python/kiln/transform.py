"""kiln.transform (jt.transform): image transforms on NumPy arrays (HWC, uint8
or float; PIL images are converted with np.asarray), in the spirit of
torchvision/Jittor: Compose, ToTensor (HWC uint8 -> CHW float32 in [0, 1]),
Normalize/ImageNormalize (on CHW), Resize (bilinear or nearest),
CenterCrop, RandomCrop (with padding), RandomHorizontalFlip,
RandomVerticalFlip, Lambda. Randomness comes from NumPy's global generator."""
import numbers

import numpy as np

__all__ = ["Compose", "ToTensor", "Normalize", "ImageNormalize", "Resize", "CenterCrop",
           "RandomCrop", "RandomHorizontalFlip", "RandomVerticalFlip", "Lambda", "to_array"]


def to_array(img):
    """An image as a NumPy array (HW or HWC)."""
    if isinstance(img, np.ndarray):
        return img
    if hasattr(img, "numpy") and not hasattr(img, "__array_interface__"):
        return img.numpy()
    return np.asarray(img)


def _size2(size):
    if isinstance(size, numbers.Number):
        return int(size), int(size)
    return int(size[0]), int(size[1])


class Compose:
    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, img):
        for t in self.transforms:
            img = t(img)
        return img


class Lambda:
    def __init__(self, fn):
        self.fn = fn

    def __call__(self, img):
        return self.fn(img)


class ToTensor:
    """HWC (or HW) -> CHW float32; uint8 values are scaled to [0, 1]."""

    def __call__(self, img):
        a = to_array(img)
        if a.ndim == 2:
            a = a[:, :, None]
        if a.ndim != 3:
            raise ValueError(f"ToTensor: expected an HW or HWC image, got shape {a.shape}")
        scale = 1 / 255.0 if a.dtype == np.uint8 else 1.0
        return np.ascontiguousarray(a.transpose(2, 0, 1)).astype(np.float32) * np.float32(scale)


class Normalize:
    """(x - mean) / std per channel of a CHW array."""

    def __init__(self, mean, std):
        self.mean = np.asarray(mean, np.float32).reshape(-1, 1, 1)
        self.std = np.asarray(std, np.float32).reshape(-1, 1, 1)

    def __call__(self, img):
        a = to_array(img)
        if a.dtype == np.uint8:
            a = a.astype(np.float32) / 255.0
        return ((a - self.mean) / self.std).astype(np.float32)


ImageNormalize = Normalize


def _resize_hwc(a, h, w, mode):
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


class Resize:
    """To size (h, w); an int resizes the shorter side to it, keeping the aspect."""

    def __init__(self, size, mode="bilinear"):
        self.size, self.mode = size, mode

    def __call__(self, img):
        a = to_array(img)
        H, W = a.shape[:2]
        if isinstance(self.size, numbers.Number):
            s = int(self.size)
            h, w = (s, max(1, int(s * W / H))) if H <= W else (max(1, int(s * H / W)), s)
        else:
            h, w = _size2(self.size)
        return _resize_hwc(a, h, w, self.mode)


class CenterCrop:
    def __init__(self, size):
        self.size = _size2(size)

    def __call__(self, img):
        a = to_array(img)
        h, w = self.size
        H, W = a.shape[:2]
        top, left = max(0, (H - h) // 2), max(0, (W - w) // 2)
        return a[top:top + h, left:left + w]


class RandomCrop:
    """A random (h, w) window; padding (int or (pad_h, pad_w)) is added first."""

    def __init__(self, size, padding=None, pad_if_needed=False, fill=0):
        self.size, self.fill, self.pad_if_needed = _size2(size), fill, pad_if_needed
        self.padding = padding

    def __call__(self, img):
        a = to_array(img)
        if self.padding:
            ph, pw = _size2(self.padding)
            pads = [(ph, ph), (pw, pw)] + [(0, 0)] * (a.ndim - 2)
            a = np.pad(a, pads, constant_values=self.fill)
        h, w = self.size
        H, W = a.shape[:2]
        if self.pad_if_needed and (H < h or W < w):
            pads = [(0, max(0, h - H)), (0, max(0, w - W))] + [(0, 0)] * (a.ndim - 2)
            a = np.pad(a, pads, constant_values=self.fill)
            H, W = a.shape[:2]
        if H < h or W < w:
            raise ValueError(f"RandomCrop: crop {self.size} is larger than the image {(H, W)}")
        top = np.random.randint(0, H - h + 1)
        left = np.random.randint(0, W - w + 1)
        return a[top:top + h, left:left + w]


class RandomHorizontalFlip:
    def __init__(self, p=0.5):
        self.p = p

    def __call__(self, img):
        a = to_array(img)
        return a[:, ::-1].copy() if np.random.rand() < self.p else a


class RandomVerticalFlip:
    def __init__(self, p=0.5):
        self.p = p

    def __call__(self, img):
        a = to_array(img)
        return a[::-1].copy() if np.random.rand() < self.p else a
