"""kiln.transform: Jittor's image transforms (PIL images in, PIL images out),
to_tensor/to_pil_image conversions, colour adjustments checked against
independent NumPy formulas, and kiln's NumPy-array path."""
import colorsys
import random

import numpy as np
import pytest
from PIL import Image

import kiln as jt
from kiln import transform as T


def _rgb(h=5, w=6, seed=0):
    a = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    return a, Image.fromarray(a, "RGB")


def _gray(h=6, w=6, seed=1, low=0):
    a = np.random.default_rng(seed).integers(low, 256, (h, w), dtype=np.uint8)
    return a, Image.fromarray(a, "L")


def _blend(base, x, factor):
    """Pillow's Image.blend per pixel: float32 base + factor * (x - base), truncated, clipped."""
    base, x = base.astype(np.float32), x.astype(np.float32)
    return np.clip(np.trunc(base + np.float32(factor) * (x - base)), 0, 255).astype(np.uint8)


def _luma(a):
    """ITU-R 601-2 luma of an RGB uint8 array, as a float (PIL's 'L' rounds it)."""
    a = a.astype(np.float64)
    return (a[..., 0] * 299 + a[..., 1] * 587 + a[..., 2] * 114) / 1000


# ---------------------------------------------------------------- to_pil_image

@pytest.mark.parametrize("dtype, mode", [(np.uint8, "L"), (np.int16, "I;16"),
                                         (np.int32, "I"), (np.float32, "F")])
def test_to_pil_image_single_channel_mode_follows_dtype(dtype, mode):
    data = (np.arange(12).reshape(3, 4) * 7).astype(dtype)
    for pic in (data, data[:, :, None], jt.array(data)):
        img = T.to_pil_image(pic)
        assert img.mode == mode and img.size == (4, 3)
        np.testing.assert_array_equal(np.asarray(img), data)
    assert T.ToPILImage(mode=mode)(data).mode == mode


def test_to_pil_image_single_channel_mode_mismatch_and_bad_dtypes():
    with pytest.raises(ValueError, match=r"to_pil_image: mode 'L' does not fit .*float32.*'F'"):
        T.to_pil_image(np.zeros((4, 4), np.float32), mode="L")
    for dtype in (np.int64, np.uint16, np.uint32, np.float64):
        with pytest.raises(TypeError, match="to_pil_image: single-channel"):
            T.to_pil_image(np.ones((4, 4, 1), dtype))


@pytest.mark.parametrize("channels, default, others", [(2, "LA", []), (3, "RGB", ["HSV", "YCbCr"]),
                                                       (4, "RGBA", ["CMYK", "RGBX"])])
def test_to_pil_image_multichannel_modes(channels, default, others):
    data = np.random.default_rng(channels).integers(0, 256, (4, 5, channels), dtype=np.uint8)
    for mode in [None, default] + others:
        img = T.to_pil_image(data, mode)
        assert img.mode == (mode or default) and img.size == (5, 4)
        for c, band in enumerate(img.split()):
            np.testing.assert_array_equal(np.asarray(band), data[:, :, c])
    wrong = "RGB" if channels != 3 else "RGBA"
    with pytest.raises(ValueError, match=f"mode '{wrong}' does not fit a {channels}-channel"):
        T.to_pil_image(data, wrong)


def test_to_pil_image_float_multichannel_is_scaled_and_truncated():
    data = np.array([[[0.0, 0.5, 0.999], [1.0, -0.5, 1.5]]], np.float64)
    img = T.to_pil_image(data)
    assert img.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(img), [[[0, 127, 254], [255, 0, 255]]])


def test_to_pil_image_reads_clear_chw_arrays_as_chw():
    chw = np.random.default_rng(0).integers(0, 256, (3, 10, 12), dtype=np.uint8)
    img = T.to_pil_image(jt.array(chw))
    assert img.size == (12, 10)
    np.testing.assert_array_equal(np.asarray(img), chw.transpose(1, 2, 0))
    hwc = np.zeros((4, 4, 3), np.uint8)                 # ambiguous: stays HWC, 4x4 RGB
    assert T.to_pil_image(hwc).size == (4, 4)


def test_to_pil_image_errors():
    with pytest.raises(TypeError, match="to_pil_image: pic should be a jt.Var or np.ndarray"):
        T.to_pil_image([[1, 2], [3, 4]])
    with pytest.raises(ValueError, match="got 4 dimensions"):
        T.ToPILImage()(jt.ones((1, 3, 4, 4)))
    with pytest.raises(ValueError, match="1 to 4 channels, got 5"):
        T.to_pil_image(np.zeros((6, 6, 5), np.uint8))
    with pytest.raises(TypeError, match="3-channel int16 arrays are not supported"):
        T.to_pil_image(np.zeros((4, 4, 3), np.int16))


# ------------------------------------------------------------------- to_tensor

def test_to_tensor_of_pil_images_by_mode():
    a, img = _rgb()
    out = T.ToTensor()(img)
    assert out.shape == (3, 5, 6) and out.dtype == np.float32
    np.testing.assert_allclose(out, a.transpose(2, 0, 1) / 255.0, rtol=1e-6)
    g, gimg = _gray()
    np.testing.assert_allclose(T.to_tensor(gimg), g[None] / 255.0, rtol=1e-6)
    ints = np.array([[1, -70000], [2 ** 30, 5]], np.int32)
    i_out = T.to_tensor(Image.fromarray(ints, "I"))
    assert i_out.dtype == np.int32
    np.testing.assert_array_equal(i_out[0], ints)
    shorts = np.array([[1, 30000], [7, 0]], np.int16)
    s_out = T.to_tensor(T.to_pil_image(shorts))
    assert s_out.dtype == np.int16
    np.testing.assert_array_equal(s_out[0], shorts)
    floats = np.array([[0.25, -3.5]], np.float32)
    np.testing.assert_array_equal(T.to_tensor(Image.fromarray(floats, "F"))[0], floats)


def test_to_tensor_of_one_bit_image_is_zero_or_one():
    bits = np.random.default_rng(3).integers(0, 2, (4, 5)).astype(np.uint8)
    img = Image.fromarray(bits * 255, "L").convert("1")
    out = T.to_tensor(img)
    assert out.shape == (1, 4, 5) and out.dtype == np.float32
    np.testing.assert_array_equal(out[0], bits)


def test_to_tensor_of_arrays():
    chw = np.random.default_rng(0).integers(0, 256, (3, 4, 4), dtype=np.uint8)
    out = T.to_tensor(chw)
    assert out.dtype == np.float32 and out.shape == (3, 4, 4)
    np.testing.assert_allclose(out, chw / 255.0, rtol=1e-7)
    levels = np.arange(256, dtype=np.uint8).reshape(1, 16, 16)  # every level correctly rounded
    np.testing.assert_array_equal(T.to_tensor(levels), (levels / 255.0).astype(np.float32))
    floats = np.random.default_rng(1).random((4, 4, 4))
    assert T.to_tensor(floats) is floats                         # CHW (ambiguous ties) passes
    hwc = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)  # clearly HWC: transposed
    np.testing.assert_allclose(T.to_tensor(hwc), hwc.transpose(2, 0, 1) / 255.0, rtol=1e-6)
    assert T.to_tensor(np.zeros((4, 5), np.uint8)).shape == (1, 4, 5)
    v = jt.ones((3, 2, 2))
    assert T.to_tensor(v) is v


def test_to_tensor_errors():
    with pytest.raises(TypeError, match="to_tensor: pic should be a PIL Image or np.ndarray, "
                                        "got list"):
        T.to_tensor(np.zeros((1, 4, 4)).tolist())
    with pytest.raises(ValueError, match="to_tensor: .*got 1 dimensions"):
        T.to_tensor(np.zeros(4))
    with pytest.raises(ValueError, match="got 4 dimensions"):
        T.to_tensor(np.zeros((1, 1, 4, 4)))


# -------------------------------------------------- resize / crops on PIL images

def test_resize_pil_images():
    a, img = _rgb(30, 40)
    square = T.Resize(12)(img)                         # Jittor's Resize: an int is (s, s)
    assert isinstance(square, Image.Image) and square.size == (12, 12)
    hw = T.Resize((10, 16))(img)
    assert hw.size == (16, 10)
    np.testing.assert_array_equal(np.asarray(hw), np.asarray(img.resize((16, 10), Image.BILINEAR)))
    near = T.Resize([10, 16], mode="nearest")(img)
    np.testing.assert_array_equal(np.asarray(near), np.asarray(img.resize((16, 10), Image.NEAREST)))
    assert T.resize(img, 15).size == (20, 15)          # the function: shorter side, rounded
    assert T.resize(img, 30) is img
    with pytest.raises(ValueError, match="Resize: size should be an int or a sequence"):
        T.Resize((1, 2, 3))
    with pytest.raises(ValueError, match="unknown interpolation 'cubic'"):
        T.Resize(4, mode="cubic")(img)


def test_center_crop_pil():
    a, img = _rgb(7, 9)
    out = T.CenterCrop((4, 4))(img)
    # The class truncates the offset (3/2 -> 1, 5/2 -> 2); the function rounds (-> 2, 2).
    np.testing.assert_array_equal(np.asarray(out), a[1:5, 2:6])
    np.testing.assert_array_equal(np.asarray(T.center_crop(img, 4)), a[2:6, 2:6])
    big = np.asarray(T.CenterCrop(9)(Image.fromarray(a[:7, :7])))   # outside is black
    assert big.shape == (9, 9, 3)
    np.testing.assert_array_equal(big[1:8, 1:8], a[:7, :7])
    assert big[0].max() == 0 and big[:, 8].max() == 0


def test_random_crop_pil_uses_numpy_generator():
    a, img = _rgb(8, 10)
    np.random.seed(5)
    out = T.RandomCrop((3, 4))(img)
    np.random.seed(5)
    top, left = np.random.randint(0, 6), np.random.randint(0, 7)
    np.testing.assert_array_equal(np.asarray(out), a[top:top + 3, left:left + 4])
    whole = T.RandomCrop((8, 10))(img)
    np.testing.assert_array_equal(np.asarray(whole), a)
    with pytest.raises(AssertionError, match=r"RandomCrop: crop size \(9, 11\) exceeds"):
        T.RandomCrop((9, 11))(img)


def test_random_crop_padding_pil():
    a, img = _rgb(4, 5)
    padded = np.asarray(T.RandomCrop((8, 7), padding=(2, 1), fill=9)(img))   # (pad_h, pad_w)
    want = np.pad(a, [(2, 2), (1, 1), (0, 0)], constant_values=9)
    np.testing.assert_array_equal(padded, want)
    grown = np.asarray(T.RandomCrop((6, 5), pad_if_needed=True)(img))
    np.testing.assert_array_equal(grown, np.pad(a, [(0, 2), (0, 0), (0, 0)]))


def test_five_and_ten_crop():
    a, img = _rgb(7, 9)
    crops = T.FiveCrop(3)(img)
    want = [a[:3, :3], a[:3, 6:], a[4:, :3], a[4:, 6:], a[2:5, 3:6]]
    for got, expected in zip(crops, want):
        np.testing.assert_array_equal(np.asarray(got), expected)
    stacked = T.to_tensor(crops)
    assert stacked.shape == (5, 3, 3, 3)
    np.testing.assert_allclose(stacked[4], a[2:5, 3:6].transpose(2, 0, 1) / 255.0, rtol=1e-6)
    ten = T.TenCrop((3, 3))(img)
    mirrored = a[:, ::-1]
    np.testing.assert_array_equal(np.asarray(ten[5]), mirrored[:3, :3])
    vten = T.TenCrop(3, vertical_flip=True)(img)
    np.testing.assert_array_equal(np.asarray(vten[5]), a[::-1][:3, :3])
    with pytest.raises(ValueError, match=r"five_crop: crop size \(8, 8\) is bigger"):
        T.FiveCrop(8)(img)


def test_random_resized_crop():
    a, img = _rgb(30, 40)
    random.seed(0)
    for _ in range(20):
        top, left, h, w = T.RandomResizedCrop.get_params(img, (0.08, 1.0), (3 / 4, 4 / 3))
        assert 0 <= top and top + h <= 30 and 0 <= left and left + w <= 40 and h > 0 and w > 0
    out = T.RandomResizedCrop((10, 12))(img)
    assert out.size == (12, 10)
    # scale 1 at the image's own aspect ratio: the whole image, resized.
    whole = T.RandomResizedCrop(20, scale=(1, 1), ratio=(4 / 3, 4 / 3))(img)
    np.testing.assert_array_equal(np.asarray(whole),
                                  np.asarray(img.resize((20, 20), Image.BILINEAR)))
    with pytest.raises(ValueError, match="RandomCropAndResize: scale and ratio"):
        T.RandomCropAndResize(10, scale=(1.0, 0.5))


# --------------------------------------------------------- flips, pad, warps

def test_random_flips_pil():
    a, img = _rgb()
    np.testing.assert_array_equal(np.asarray(T.RandomHorizontalFlip(1)(img)), a[:, ::-1])
    np.testing.assert_array_equal(np.asarray(T.RandomVerticalFlip(1)(img)), a[::-1])
    assert T.RandomHorizontalFlip(0)(img) is img
    random.seed(3)
    flipped = sum(T.RandomVerticalFlip(0.7)(img) != img for _ in range(400))
    assert 240 < flipped < 320                              # ~280 for p = 0.7


def test_pad():
    a, img = _rgb(3, 4)
    np.testing.assert_array_equal(np.asarray(T.Pad(1, fill=7)(img)),
                                  np.pad(a, [(1, 1), (1, 1), (0, 0)], constant_values=7))
    np.testing.assert_array_equal(np.asarray(T.pad(img, (2, 1))),        # (left/right, top/bottom)
                                  np.pad(a, [(1, 1), (2, 2), (0, 0)]))
    np.testing.assert_array_equal(np.asarray(T.Pad((1, 0, 2, 3), padding_mode="reflect")(img)),
                                  np.pad(a, [(0, 3), (1, 2), (0, 0)], mode="reflect"))
    np.testing.assert_array_equal(np.asarray(T.pad(img, 2, padding_mode="edge")),
                                  np.pad(a, [(2, 2), (2, 2), (0, 0)], mode="edge"))
    for mode in ("1", "P", "CMYK"):                         # modes fromarray cannot infer
        source = img.convert(mode)
        arr = np.asarray(source)
        out = T.pad(source, 1, padding_mode="reflect")
        assert out.mode == mode and out.getpalette() == source.getpalette()
        widths = [(1, 1), (1, 1)] + [(0, 0)] * (arr.ndim - 2)
        np.testing.assert_array_equal(np.asarray(out), np.pad(arr, widths, mode="reflect"))
    chw = _rgb(5, 6)[0].transpose(2, 0, 1).copy()            # (3, 5, 6): clearly CHW
    np.testing.assert_array_equal(T.Pad(1, padding_mode="symmetric")(chw),
                                  np.pad(chw, [(0, 0), (1, 1), (1, 1)], mode="symmetric"))
    with pytest.raises(ValueError, match="Pad: padding should be an int or a sequence of 2 or 4"):
        T.Pad((1, 2, 3))
    with pytest.raises(ValueError, match="Pad: padding_mode should be one of"):
        T.Pad(1, padding_mode="wrap")


def test_rotation():
    g, img = _gray()
    np.testing.assert_array_equal(np.asarray(T.RandomRotation((90, 90))(img)), np.rot90(g))
    rotated = T.RandomRotation(30, fill=255)(Image.fromarray(np.zeros((9, 9), np.uint8)))
    assert np.asarray(rotated)[0, 0] == 255                 # corners come from the fill
    with pytest.raises(ValueError, match="RandomRotation: degrees as a single number "
                                         "should be non-negative"):
        T.RandomRotation(-5)
    with pytest.raises(ValueError, match="fill .* one value per band"):
        T.rotate(_rgb()[1], 10, fill=(1, 2))


def test_affine():
    g, img = _gray(low=1)
    identity = T.RandomAffine(0)(img)
    np.testing.assert_array_equal(np.asarray(identity), g)
    moved = np.asarray(T.affine(img, 0, (2, 0), 1, 0))
    np.testing.assert_array_equal(moved[:, 2:], g[:, :-2])
    assert moved[:, :2].max() == 0
    # 180 degrees about Jittor's centre (w/2 + 0.5, h/2 + 0.5): out[y, x] = in[h - y, w - x].
    turned = np.asarray(T.affine(img, 180, (0, 0), 1, 0))
    np.testing.assert_array_equal(turned[1:, 1:], g[:0:-1, :0:-1])
    assert turned[0].max() == 0 and turned[:, 0].max() == 0
    doubled = np.asarray(T.affine(Image.fromarray(np.full((8, 8), 50, np.uint8)), 0, (0, 0), 2, 0))
    assert doubled.min() == 50                              # scaled up: no border shows
    random.seed(1)
    angle, shift, scale, shear = T.RandomAffine.get_params((-10, 10), (0.1, 0.2), (0.5, 2),
                                                           (-5, 5, -3, 3), (40, 30))
    assert -10 <= angle <= 10 and abs(shift[0]) <= 4 and abs(shift[1]) <= 6
    assert 0.5 <= scale <= 2 and -5 <= shear[0] <= 5 and -3 <= shear[1] <= 3
    assert T.RandomAffine(20)(jt.random((30, 40, 3))).size == (40, 30)
    with pytest.raises(ValueError, match="RandomAffine: translate fractions should be in"):
        T.RandomAffine(0, translate=(0.5, 2))
    with pytest.raises(ValueError, match="RandomAffine: scale values should be positive"):
        T.RandomAffine(0, scale=(0, 1))
    with pytest.raises(ValueError, match="RandomAffine: shear should be a number or a sequence"):
        T.RandomAffine(0, shear=(1, 2, 3))
    with pytest.raises(ValueError, match="affine: scale should be positive"):
        T.affine(img, 0, (0, 0), 0, 0)


def test_perspective():
    g, img = _gray()
    corners = [(0, 0), (5, 0), (5, 5), (0, 5)]
    moved = np.asarray(T.perspective(img, corners, [(x + 2, y) for x, y in corners], T.NEAREST))
    np.testing.assert_array_equal(moved[:, 2:], g[:, :-2])
    assert T.RandomPerspective(p=0)(img) is img
    unchanged = T.RandomPerspective(distortion_scale=0, p=1, interpolation=T.NEAREST)(img)
    np.testing.assert_array_equal(np.asarray(unchanged), g)
    random.seed(2)
    start, end = T.RandomPerspective.get_params(40, 30, 0.5)
    assert start == [(0, 0), (39, 0), (39, 29), (0, 29)]
    (tlx, tly), (trx, try_), (brx, bry), (blx, bly) = end
    assert 0 <= tlx <= 10 and 0 <= tly <= 7 and 29 <= trx <= 39 and 22 <= bry <= 29


# ----------------------------------------------------------- colour adjustments

@pytest.mark.parametrize("factor", [0, 0.5, 1, 1.3, 2])
def test_adjust_brightness_contrast_saturation_match_blend_formulas(factor):
    a, img = _rgb()
    np.testing.assert_array_equal(np.asarray(T.adjust_brightness(img, factor)),
                                  _blend(np.zeros_like(a), a, factor))
    mean_gray = int(np.asarray(img.convert("L")).mean() + 0.5)
    np.testing.assert_array_equal(np.asarray(T.adjust_contrast(img, factor)),
                                  _blend(np.full_like(a, mean_gray), a, factor))
    gray3 = np.repeat(np.asarray(img.convert("L"))[..., None], 3, axis=2)
    np.testing.assert_array_equal(np.asarray(T.adjust_saturation(img, factor)),
                                  _blend(gray3, a, factor))


@pytest.mark.parametrize("gamma, gain", [(0.5, 1), (1, 1), (2, 1), (1, 0.5)])
def test_adjust_gamma_matches_power_law(gamma, gain):
    a, img = _rgb()
    want = np.floor((256 - 1e-3) * gain * (a / 255.0) ** gamma).astype(np.uint8)
    np.testing.assert_array_equal(np.asarray(T.adjust_gamma(img, gamma, gain)), want)


def test_adjust_hue_rotates_hue():
    red = Image.new("RGB", (2, 2), (255, 0, 0))
    np.testing.assert_array_equal(np.asarray(T.adjust_hue(red, 1 / 3))[0, 0], [0, 255, 0])
    # -1/3 turn: the 8-bit hue 0 - 85 wraps to 171.
    want = [round(255 * c) for c in colorsys.hsv_to_rgb(171 / 255, 1, 1)]
    np.testing.assert_array_equal(np.asarray(T.adjust_hue(red, -1 / 3))[0, 0], want)
    # The shift is int(factor * 255) steps of 1/256 turn: 0.5 -> 127.
    want = [round(255 * c) for c in colorsys.hsv_to_rgb(127 / 255, 1, 1)]
    np.testing.assert_allclose(np.asarray(T.adjust_hue(red, 0.5))[0, 0], want, atol=1)
    a, img = _rgb()
    np.testing.assert_allclose(np.asarray(T.adjust_hue(img, 0)), a, atol=8)   # HSV round trip
    rgba = Image.fromarray(np.random.default_rng(0).integers(0, 256, (3, 3, 4), dtype=np.uint8))
    shifted = T.adjust_hue(rgba, 0.2)
    assert shifted.mode == "RGBA"
    np.testing.assert_array_equal(np.asarray(shifted)[..., 3], np.asarray(rgba)[..., 3])
    with pytest.raises(ValueError,
                       match=r"adjust_hue: hue_factor should be in \[-0.5, 0.5\], got -0.7"):
        T.adjust_hue(img, -0.7)


def test_adjustments_keep_mode_l_and_reject_non_pil():
    g, img = _gray()
    for out in (T.adjust_brightness(img, 2), T.adjust_contrast(img, 2),
                T.adjust_saturation(img, 2), T.adjust_hue(img, 0.4), T.adjust_gamma(img, 0.5)):
        assert out.mode == "L" and out.size == img.size
    np.testing.assert_array_equal(np.asarray(T.adjust_hue(img, 0.4)), g)
    np.testing.assert_array_equal(np.asarray(T.adjust_saturation(img, 0)), g)
    with pytest.raises(TypeError,
                       match="adjust_brightness: img should be a PIL Image, got ndarray"):
        T.adjust_brightness(g, 2)
    with pytest.raises(ValueError, match="adjust_contrast: contrast_factor should be non-negative"):
        T.adjust_contrast(img, -1)
    with pytest.raises(ValueError, match="adjust_gamma: gamma should be non-negative, got -1"):
        T.adjust_gamma(img, -1)


def test_color_jitter():
    a, img = _rgb()
    g, gimg = _gray()
    jitter = T.ColorJitter(2, 2, 2, 0.1)
    random.seed(0)
    for _ in range(5):
        assert jitter(img).mode == "RGB" and jitter(gimg).mode == "L"
    only_brightness = T.ColorJitter(brightness=(0.5, 0.5))
    np.testing.assert_array_equal(np.asarray(only_brightness(img)),
                                  _blend(np.zeros_like(a), a, 0.5))
    assert T.ColorJitter(0, 0, 0, 0).brightness is None
    np.testing.assert_array_equal(np.asarray(T.ColorJitter()(img)), a)
    assert T.ColorJitter(brightness=0.5).brightness == [0.5, 1.5]
    assert T.ColorJitter(contrast=3).contrast == [0.0, 4.0]
    with pytest.raises(ValueError, match="ColorJitter: hue should be \\(min, max\\) within"):
        T.ColorJitter(hue=(0.2, 0.7))
    with pytest.raises(ValueError, match="ColorJitter: brightness as a single number"):
        T.ColorJitter(brightness=-1)
    with pytest.raises(TypeError, match="ColorJitter: saturation should be a number or a sequence"):
        T.ColorJitter(saturation="a lot")


def test_gray_gives_float_arrays():
    a, img = _rgb()
    one = T.Gray()(img)
    assert one.shape == (1, 5, 6) and one.dtype == np.float32
    np.testing.assert_allclose(one[0], _luma(a) / 255, atol=1 / 255)
    three = T.Gray(num_output_channels=3)(img)
    assert three.shape == (5, 6, 3)
    np.testing.assert_array_equal(three[..., 0], three[..., 2])
    np.testing.assert_array_equal(three[..., 1], one[0])
    g, gimg = _gray()
    np.testing.assert_allclose(T.Gray()(gimg)[0], g / 255.0, rtol=1e-6)
    with pytest.raises(ValueError, match="Gray: num_output_channels should be 1 or 3, got 2"):
        T.Gray(2)


def test_random_gray():
    a, img = _rgb()
    out = T.RandomGray(p=1.0)(img)
    assert out.mode == "RGB"
    luma = np.asarray(out)
    np.testing.assert_array_equal(luma[..., 0], luma[..., 1])
    np.testing.assert_allclose(luma[..., 2], _luma(a), atol=0.5 + 1e-9)
    assert T.RandomGray(p=0.0)(img) is img
    g, gimg = _gray()
    stays = T.RandomGray(p=1.0)(gimg)
    assert stays.mode == "L"
    np.testing.assert_array_equal(np.asarray(stays), g)
    random.seed(4)
    grayed = sum(T.RandomGray(p=0.5)(img) != img for _ in range(400))
    assert 160 < grayed < 240


# ----------------------------------------------------- composing and normalising

def test_compose_lambda_and_random_containers():
    add = T.Lambda(lambda x: x + 1)
    assert T.Compose([add, add])(1) == 3
    assert T.Compose([lambda x, y: (y, x)])(1, 2) == (2, 1)
    with pytest.raises(TypeError, match="Lambda: expected a callable, got int"):
        T.Lambda(3)
    for cls in (T.RandomApply, T.RandomChoice, T.RandomOrder):
        with pytest.raises(TypeError,
                           match=f"{cls.__name__}: transforms should be a list or tuple"):
            cls(add)
    random.seed(0)
    applied = sum(T.RandomApply([add], p=0.3)(0) for _ in range(500))
    assert 110 < applied < 190                               # ~150
    chosen = [T.RandomChoice([T.Lambda(lambda x: "a"), T.Lambda(lambda x: "b")])(0)
              for _ in range(200)]
    assert 70 < chosen.count("a") < 130
    order = T.RandomOrder([T.Lambda(lambda s: s + "x"), T.Lambda(lambda s: s + "y")])
    outcomes = [order("") for _ in range(200)]
    assert set(outcomes) == {"xy", "yx"} and 70 < outcomes.count("xy") < 130


def test_image_normalize_arrays_vars_and_images():
    rng = np.random.default_rng(0)
    img = rng.random((3, 4, 5))
    mean, std = np.array([0.1, 0.5, 0.9]), np.array([1.0, 2.0, 0.5])
    want = (img - mean[:, None, None]) / std[:, None, None]
    np.testing.assert_allclose(T.image_normalize(img, mean, std), want)
    shaped = T.image_normalize(img, mean.reshape(-1, 1, 1), std.reshape(-1, 1, 1))
    np.testing.assert_allclose(shaped, want)
    out = T.image_normalize(jt.array(img), jt.array([1, 2, 3], dtype="int64"),
                            jt.array([1, 2, 1], dtype="int64"))
    assert isinstance(out, jt.Var)
    np.testing.assert_allclose(out.numpy(), (img - [[[1]], [[2]], [[3]]]) / [[[1]], [[2]], [[1]]])
    a, pil = _rgb(4, 5)
    want_pil = (a.transpose(2, 0, 1) / 255.0 - mean[:, None, None]) / std[:, None, None]
    np.testing.assert_allclose(T.image_normalize(pil, mean, std), want_pil, rtol=1e-5)
    with pytest.raises(ValueError, match="image_normalize: std should be non-zero"):
        T.image_normalize(img, mean, [1, 0, 1])
    with pytest.raises(ValueError,
                       match=r"image_normalize: img should be \(..., C, H, W\), "
                             r"got shape \(4, 5\)"):
        T.image_normalize(img[0], mean, std)


def test_image_normalize_class_on_uint8_and_vars():
    chw = np.random.default_rng(1).integers(0, 256, (3, 2, 2), dtype=np.uint8)
    norm = T.ImageNormalize([0.5, 0.5, 0.5], [0.25, 0.5, 1.0])
    want = (chw / 255.0 - 0.5) / np.array([0.25, 0.5, 1.0])[:, None, None]
    np.testing.assert_allclose(norm(chw), want, rtol=1e-5)
    out = T.Normalize([0.5], [0.5])(jt.ones((1, 2, 2)))
    assert isinstance(out, jt.Var)
    np.testing.assert_allclose(out.numpy(), np.ones((1, 2, 2)))


# ------------------------------------------------------ kiln's NumPy array path

def test_array_path_keeps_arrays_and_layout():
    hwc = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    chw = np.ascontiguousarray(hwc.transpose(2, 0, 1)).astype(np.float32)
    assert T.Resize(2)(hwc).shape == (2, 3, 3)                 # shorter side, HWC kept
    resized = T.Resize((8, 12), mode="nearest")(chw)
    assert resized.shape == (3, 8, 12)
    np.testing.assert_array_equal(resized, chw[:, np.arange(8) // 2][:, :, np.arange(12) // 2])
    np.testing.assert_array_equal(T.CenterCrop(2)(chw), chw[:, 1:3, 2:4])
    np.testing.assert_array_equal(T.RandomHorizontalFlip(1)(chw), chw[:, :, ::-1])
    np.testing.assert_array_equal(T.RandomVerticalFlip(1)(hwc), hwc[::-1])
    np.random.seed(7)
    crop = T.RandomCrop((2, 3))(chw)
    np.random.seed(7)
    top, left = np.random.randint(0, 3), np.random.randint(0, 4)
    np.testing.assert_array_equal(crop, chw[:, top:top + 2, left:left + 3])
    gray = T.Gray()(Image.fromarray(hwc))                        # (1, H, W) stays CHW
    assert T.Resize(2)(gray).shape == (1, 2, 3)
    with pytest.raises(ValueError, match="Resize: arrays are resized with .* got 'bicubic'"):
        T.Resize(2, mode=T.BICUBIC)(hwc)
    with pytest.raises(AssertionError, match="RandomCrop: crop size"):
        T.RandomCrop(5)(hwc)


def test_kiln_imports_without_pillow():
    """Pillow is optional: in a process where it cannot be imported, kiln
    imports, array transforms run, and what needs PIL raises ImportError
    naming the package to install."""
    import os
    import subprocess
    import sys
    code = """
import sys
sys.modules["PIL"] = None
import numpy as np, kiln as jt
from kiln import transform as T
a = (np.arange(8 * 8 * 3) % 256).astype(np.uint8).reshape(8, 8, 3)
t = T.ImageNormalize([0.5] * 3, [0.5] * 3)(T.to_tensor(a))
assert t.shape == (3, 8, 8), t.shape
try:
    T.to_pil_image(a)
except ImportError as e:
    assert "Pillow" in str(e) and "python3-pil" in str(e), e
    print("ok")
"""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stdout + r.stderr
