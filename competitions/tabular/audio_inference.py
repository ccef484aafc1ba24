"""Audio inference from a run's files alone, as a code submission runs it: the network
common.sound.export wrote (ONNX, or its TorchScript copy where the runtime has torch and no
onnxruntime; the front end and the baseline in its metadata) scores each test clip with
numpy and soundfile (common/sound_inference.py), and
media_inference turns the probabilities into the submission as it does for images.

A module of its own rather than a branch in media_inference: the package ships what its
entry imports, and an image package must not need soundfile.
"""
from pathlib import Path

from common import sound_inference
from competitions.tabular import media_inference

MODEL = "audio.onnx"
SCRIPT = "audio.torchscript.pt"   # sound_inference.script_path(MODEL): its TorchScript copy


def files_for(profile):
    """The run files a package of an audio run ships for a runtime."""
    return (media_inference.network_file(profile, MODEL, SCRIPT), media_inference.META)


class Network(object):
    """The exported audio network, in media_inference.run's shape."""

    def __init__(self, folder):
        self.path = Path(folder) / MODEL

    def predict(self, files):
        """Probabilities per clip; a missing or unreadable clip gets the training prior
        (sound_inference prints its reason, one line a clip)."""
        missing = ["{} (no such clip)".format(i) for i, path in enumerate(files) if path is None]
        return sound_inference.predict_exported(self.path, files), missing


def run(bundle_dir, data_dir, out):
    return media_inference.run(bundle_dir, data_dir, out, network=Network)
