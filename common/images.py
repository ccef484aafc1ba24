"""Images as a network reads them, with numpy and Pillow alone: decoding any format
Pillow reads (PNG, JPEG, TIFF, BMP, GIF, WebP; grey, palette, RGB, RGBA, 16-bit) to
uint8 RGB at a fixed size, the network's float input, and the mirror view test-time
averaging adds.

Training (common/vision.py packs these arrays into shards), `compete predict` and the
code submission's inference (competitions/tabular/media_inference.py, which may import
nothing but numpy, Pillow and onnxruntime) share these functions, so the three see the
same pixels.
"""
import warnings

import numpy as np

# ImageNet's channel statistics: what timm's pretrained backbones were trained on; the
# small from-scratch network learns whatever scale it is given, so one normalisation
# serves both.
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


class UnreadableImage(ValueError):
    """A file Pillow cannot decode; the message is the reason, one line."""


def read_image(path, size):
    """The image at `path` as uint8 (size, size, 3), squashed to a square (a classifier
    sees the whole frame, as Kaggle's image sets are mostly near-square photos).
    Transparent pixels are put on white; 16-bit and float images are scaled to 8 bits.
    Raises UnreadableImage with the reason."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's DecompressionBombWarning, EXIF noise
            with Image.open(str(path)) as image:
                if image.format == "JPEG":
                    # draft mode decodes at 1/2..1/8 scale straight from the DCT: a 2000-pixel
                    # photo shrinks for a fraction of a full decode
                    image.draft("RGB", (size * 2, size * 2))
                image.load()
                rgb = _to_rgb(image)
                rgb = rgb.resize((int(size), int(size)), Image.BILINEAR)
                return np.asarray(rgb, dtype=np.uint8)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise UnreadableImage(" ".join(str(error).split())[:160] or type(error).__name__) from None


def _to_rgb(image):
    from PIL import Image

    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        low, high = float(array.min()), float(array.max())
        scaled = (array - low) / (high - low) * 255.0 if high > low else np.zeros_like(array)
        image = Image.fromarray(scaled.astype(np.uint8), mode="L")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image)
    return image.convert("RGB")


def image_size(path):
    """(width, height) from the file's header, without decoding it; None when unreadable."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(str(path)) as image:
                return image.size
    except (OSError, SyntaxError, ValueError):
        return None


def network_input(array):
    """uint8 (H, W, 3) -> float32 (3, H, W), normalised by MEAN and STD."""
    scaled = (array.astype(np.float32) / np.float32(255.0) - MEAN) / STD
    return np.ascontiguousarray(scaled.transpose(2, 0, 1), dtype=np.float32)


def mirror(batch):
    """A batch of network inputs (N, C, H, W) mirrored left to right: training flips
    every image at random, so predictions are averaged over both views."""
    return np.ascontiguousarray(batch[..., ::-1])


def probabilities(task, logits):
    """A network's logits as its task's probabilities: softmax for one class of several,
    a sigmoid per output otherwise (binary: the second class's, shape (n,))."""
    logits = np.asarray(logits, dtype=np.float64)
    if task == "multiclass":
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)
    sigmoid = 1.0 / (1.0 + np.exp(-logits))
    return sigmoid[:, 0] if task == "binary" else sigmoid
