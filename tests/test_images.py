"""Reading every promised format and mode correctly, resizing, and writing atomically."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from tf_style import images
from tf_style.errors import Field, InputError


def gradient_rgb(h=20, w=30) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // (w - 1), y * 255 // (h - 1), np.full_like(x, 90)], axis=-1).astype(np.uint8)


@pytest.mark.parametrize("ext,tolerance", [("png", 0), ("bmp", 0), ("tiff", 0), ("webp", 0), ("jpg", 12)])
def test_reads_each_format(tmp_path, ext, tolerance):
    rgb = gradient_rgb()
    path = tmp_path / f"x.{ext}"
    options = {"lossless": True} if ext == "webp" else {}
    Image.fromarray(rgb).save(path, **options)
    got = images.load_image(path)
    assert got.dtype == np.float32 and got.shape == (20, 30, 3)
    assert np.abs(got - rgb).max() <= tolerance


def test_gif_gives_the_first_frame(tmp_path):
    red = Image.new("RGB", (8, 6), (255, 0, 0))
    blue = Image.new("RGB", (8, 6), (0, 0, 255))
    path = tmp_path / "anim.gif"
    red.save(path, save_all=True, append_images=[blue], duration=100, loop=0)
    got = images.load_image(path)
    np.testing.assert_array_equal(got[0, 0], [255, 0, 0])


def test_exif_orientation_is_applied(tmp_path):
    # A landscape picture whose EXIF says "rotate 90 degrees clockwise to view" (orientation 6).
    rgb = np.zeros((10, 20, 3), np.uint8)
    rgb[:, :5] = (255, 0, 0)  # red band on the left of the stored pixels
    img = Image.fromarray(rgb)
    exif = img.getexif()
    exif[0x0112] = 6
    path = tmp_path / "phone.jpg"
    img.save(path, exif=exif, quality=100)
    got = images.load_image(path)
    assert got.shape == (20, 10, 3)  # upright: portrait
    # After a clockwise rotation the left band is at the top.
    assert got[1, 5, 0] > 200 and got[1, 5, 2] < 60
    assert got[-2, 5, 0] < 60


def test_grey_is_replicated(tmp_path):
    Image.fromarray(np.full((4, 5), 77, np.uint8), mode="L").save(tmp_path / "g.png")
    np.testing.assert_array_equal(images.load_image(tmp_path / "g.png"), np.full((4, 5, 3), 77.0))


def test_rgba_is_composited_over_white(tmp_path):
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[0, 0, 3] = 255  # opaque red-ish
    rgba[0, 1, 3] = 0  # fully transparent: white
    rgba[1, :, 3] = 128  # half: mix
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    got = images.load_image(tmp_path / "a.png")
    np.testing.assert_allclose(got[0, 0], [200, 0, 0])
    np.testing.assert_allclose(got[0, 1], [255, 255, 255])
    a = 128 / 255
    np.testing.assert_allclose(got[1, 0], [200 * a + 255 * (1 - a), 255 * (1 - a), 255 * (1 - a)], atol=1e-3)


def test_palette_with_transparency(tmp_path):
    img = Image.new("P", (2, 1))
    img.putpalette([0, 0, 255] + [0, 255, 0] + [0, 0, 0] * 254)
    img.putpixel((0, 0), 0)
    img.putpixel((1, 0), 1)
    img.info["transparency"] = 0
    img.save(tmp_path / "p.png", transparency=0)
    got = images.load_image(tmp_path / "p.png")
    np.testing.assert_array_equal(got[0, 0], [255, 255, 255])  # transparent entry -> white
    np.testing.assert_array_equal(got[0, 1], [0, 255, 0])


def test_cmyk(tmp_path):
    Image.new("CMYK", (3, 3), (0, 255, 255, 0)).save(tmp_path / "c.jpg", quality=100)  # pure red ink
    got = images.load_image(tmp_path / "c.jpg")
    assert got[1, 1, 0] > 240 and got[1, 1, 1] < 15 and got[1, 1, 2] < 15


def test_16_bit_grey_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 32768, 65535]], np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")
    got = images.load_image(tmp_path / "deep.png")
    np.testing.assert_allclose(got[0, :, 0], [0.0, 32768 * 255 / 65535, 255.0], atol=1e-3)


def test_missing_file_and_not_an_image(tmp_path):
    with pytest.raises(InputError, match=r"^content: no such file: .*nope\.jpg$"):
        images.load_image(tmp_path / "nope.jpg", Field("content"))
    (tmp_path / "text.jpg").write_text("hello")
    with pytest.raises(InputError, match=r"^style: .*text\.jpg is not an image Pillow can read"):
        images.load_image(tmp_path / "text.jpg", Field("style"))
    with pytest.raises(InputError, match=r"is a folder"):
        images.load_image(tmp_path, Field("style"))


def test_resize_longest_keeps_aspect_ratio():
    out = images.resize_longest(gradient_rgb(20, 30).astype(np.float32), 12)
    assert out.shape == (8, 12, 3)
    assert images.size_for_longest_side(300, 451, 512) == (341, 512)
    # A flat image stays flat through Lanczos (no ringing, no range escape).
    flat = images.resize(np.full((9, 7, 3), 200.0, np.float32), (30, 20))
    np.testing.assert_allclose(flat, 200.0, atol=1e-3)


def test_as_rgb_array_validates_arrays():
    np.testing.assert_array_equal(images.as_rgb_array(np.full((2, 3), 5, np.uint8)), np.full((2, 3, 3), 5.0))
    with pytest.raises(InputError, match=r"expected an array of shape \[H, W, 3\]; got shape \[2, 3, 5\]"):
        images.as_rgb_array(np.zeros((2, 3, 5)))
    with pytest.raises(InputError, match=r"pixel values must lie in \[0, 255\]; got \[-1, 3\]"):
        images.as_rgb_array(np.array([[[-1.0, 0, 3]]]))


def test_save_by_extension_and_atomically(tmp_path):
    rgb = gradient_rgb().astype(np.float32)
    images.save_image(rgb, tmp_path / "a.jpg")
    images.save_image(rgb, tmp_path / "b")  # no extension: PNG
    images.save_image(rgb, tmp_path / "c.webp")
    assert Image.open(tmp_path / "a.jpg").format == "JPEG"
    assert Image.open(tmp_path / "b").format == "PNG"
    assert Image.open(tmp_path / "c.webp").format == "WEBP"
    np.testing.assert_array_equal(images.load_image(tmp_path / "b"), rgb)
    assert sorted(os.listdir(tmp_path)) == ["a.jpg", "b", "c.webp"]  # no temporary files left


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_saved_files_get_the_usual_permissions(tmp_path, umask):
    old = os.umask(umask)
    try:
        images.save_image(gradient_rgb(), tmp_path / "p.png")
    finally:
        os.umask(old)
    assert (os.stat(tmp_path / "p.png").st_mode & 0o777) == 0o666 & ~umask  # not mkstemp's private 0600


def test_output_path_is_checked_before_any_work(tmp_path):
    assert images.check_output_path(tmp_path / "ok.jpg") == "JPEG"
    # Missing folders are made (with their parents), as the output will need them.
    assert images.check_output_path(tmp_path / "new" / "deeper" / "o.png") == "PNG"
    assert (tmp_path / "new" / "deeper").is_dir()
    (tmp_path / "a-file").write_bytes(b"x")
    with pytest.raises(InputError) as info:
        images.check_output_path(tmp_path / "a-file" / "sub" / "o.png")
    assert str(info.value) == f"output: cannot write {tmp_path / 'a-file' / 'sub' / 'o.png'}: {tmp_path / 'a-file'} is a file, not a folder"
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(InputError, match=r"^output: .*dir\.png is a folder; expected an image file name$"):
        images.check_output_path(tmp_path / "dir.png")


@pytest.mark.parametrize("given", ["", "newdir/", "newdir/.", os.path.join("newdir", "..")])
def test_an_output_that_names_a_folder_is_refused_before_any_work(tmp_path, monkeypatch, given):
    # A review found "newdir/" and "" passing the check (abspath drops the slash) and a whole run ending in
    # NotADirectoryError / FileNotFoundError when the image was saved.
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError) as info:
        images.check_output_path(given)
    assert str(info.value) == f"output: {given!r} names a folder, not a file; expected an image file name such as out.png"
    assert os.listdir(tmp_path) == []  # no folder made for it either


def test_an_output_that_is_no_path_is_refused():
    with pytest.raises(InputError) as info:
        images.check_output_path(123)
    assert str(info.value) == "output: expected an image file name (a str or os.PathLike); got int 123"


def test_save_failure_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "out.png"
    target.write_bytes(b"old")

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", boom)
    with pytest.raises(OSError):
        images.save_image(gradient_rgb().astype(np.float32), target)
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["out.png"]


def test_unknown_output_extension(tmp_path):
    with pytest.raises(InputError, match=r"^output: cannot write .*x\.xyz: unknown extension '\.xyz'; use one of \.png"):
        images.save_image(gradient_rgb(), tmp_path / "x.xyz")


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height (valid CRCs, one empty IDAT)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def test_a_decompression_bomb_is_refused_and_a_big_camera_photo_is_not(tmp_path, monkeypatch):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_claiming(60000, 60000))
    with pytest.raises(InputError) as info:
        images.load_image(bomb, Field("content"))
    assert str(info.value).startswith(f"content: {bomb} is too large to decode safely (Image size (3600000000 pixels)")
    assert str(info.value).endswith("; resize it first (a run uses at most 8192 pixels a side)")
    # Between Pillow's limit and twice it (89-179 MP at the default limit: real medium-format
    # photos) Pillow only warns: such a photo loads. Shown with the limit lowered to 1000 pixels.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    Image.new("RGB", (40, 40), (10, 20, 30)).save(tmp_path / "big.png")  # 1600 pixels: over the limit, under twice it
    assert images.load_image(tmp_path / "big.png").shape == (40, 40, 3)
    Image.new("RGB", (50, 50)).save(tmp_path / "bigger.png")  # 2500 pixels: over twice the limit
    with pytest.raises(InputError, match="too large to decode safely"):
        images.load_image(tmp_path / "bigger.png")
