"""Media files read by their bytes, not their names.

Competition downloads lie about their contents: an `.mp3` may hold WAV data, a
truncated download may hold half a frame, a failed one an HTML error page. Everything
here detects the container from its magic bytes first, and says why a file cannot be
read instead of failing somewhere deeper with a library's message.
"""
from __future__ import annotations

import contextlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

AUDIO_KINDS = ("wav", "mp3", "flac", "ogg", "aiff")
IMAGE_KINDS = ("jpeg", "png", "gif", "bmp", "tiff", "webp")
MIN_SECONDS = 0.05  # less than one call: not a recording worth a prediction


class DecodeError(ValueError):
    """A file that holds no usable media; the message is the reason, one line."""


def sniff(head: bytes) -> str:
    """The container named by a file's first bytes: one of AUDIO_KINDS, IMAGE_KINDS,
    'empty', 'html', 'text' or 'unknown'."""
    if not head:
        return "empty"
    if head[:4] in (b"RIFF", b"RIFX", b"RF64") and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:3] == b"ID3" or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and head[1] & 0x06):
        return "mp3"  # an ID3v2 tag, or an MPEG audio frame sync with a valid layer
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"OggS":
        return "ogg"
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "aiff"
    if head[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if head[:4] in (b"GIF8",):
        return "gif"
    if head[:2] == b"BM":
        return "bmp"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    text = head.lstrip()[:64].lower()
    if text.startswith((b"<!doctype html", b"<html", b"<?xml", b"<head")):
        return "html"
    if all(32 <= byte < 127 or byte in (9, 10, 13) for byte in head[:64]):
        return "text"
    return "unknown"


def sniff_file(path: Path | str) -> str:
    with open(path, "rb") as handle:
        return sniff(handle.read(16))


@dataclass(frozen=True)
class Audio:
    samples: np.ndarray  # float32, shape (frames,) when mono else (frames, channels)
    sample_rate: int
    kind: str            # the container found in the bytes
    channels: int        # as stored, before any downmix

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.sample_rate


def read_audio(path: Path | str, sample_rate: int | None = None, mono: bool = True) -> Audio:
    """Decode an audio file whatever its name says; resample and downmix on request.

    soundfile (libsndfile, which reads MP3 too) decodes first; librosa's audioread path
    is the fallback for codecs libsndfile lacks. Raises DecodeError with the reason."""
    data = Path(path).read_bytes()
    kind = sniff(data[:16])
    if kind not in AUDIO_KINDS:
        raise DecodeError(f"not audio: {_describe(kind, data)}")
    samples, rate = _decode(data, path, kind)
    if samples.ndim == 1:
        samples = samples[:, None]
    channels = samples.shape[1]
    if not np.isfinite(samples).all():
        samples = np.nan_to_num(samples, nan=0.0, posinf=0.0, neginf=0.0)
    if len(samples) < MIN_SECONDS * rate:
        raise DecodeError(f"{kind} holds {len(samples) / rate:.3f} s of audio (truncated?)")
    if mono:
        samples = samples.mean(axis=1)
    if sample_rate and sample_rate != rate:
        import soxr
        samples = soxr.resample(samples, rate, sample_rate, quality="HQ")
        rate = sample_rate
    return Audio(np.ascontiguousarray(samples, dtype=np.float32), int(rate), kind, channels)


@contextlib.contextmanager
def _silent_native_stderr():
    """mpg123 inside libsndfile prints warnings about damaged frames straight to file
    descriptor 2; the reason that matters is raised as a DecodeError instead."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _decode(data: bytes, path, kind: str) -> tuple[np.ndarray, int]:
    import soundfile
    first_error = None
    try:
        with _silent_native_stderr():
            samples, rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)
        return samples, rate
    except Exception as error:  # libsndfile reports every failure as a generic error
        first_error = error
    try:
        import warnings
        import librosa
        with warnings.catch_warnings(), _silent_native_stderr():
            warnings.simplefilter("ignore")
            samples, rate = librosa.load(path, sr=None, mono=False)
        samples = np.asarray(samples, dtype=np.float32)
        return (samples.T if samples.ndim == 2 else samples), int(rate)
    except Exception:
        reason = " ".join(str(first_error).split()) or type(first_error).__name__
        if reason.startswith("Error opening"):  # names our in-memory buffer, says nothing of the bytes
            reason = "no stream the decoders recognise; truncated?"
        raise DecodeError(f"{kind} header but no decodable audio ({len(data)} bytes): {reason}") from None


def _describe(kind: str, data: bytes) -> str:
    if kind == "empty":
        return "the file is empty (0 bytes)"
    if kind in ("html", "text"):
        return f"{kind} ({len(data)} bytes, starts {data[:24].decode('ascii', 'replace')!r}), likely a failed download"
    if kind in IMAGE_KINDS:
        return f"an image ({kind})"
    return f"unrecognised bytes {data[:8].hex(' ')} ({len(data)} bytes)"


def audio_info(path: Path | str) -> dict:
    """Container, rate, channels and duration, read from the header where possible."""
    import soundfile
    kind = sniff_file(path)
    info = {"kind": kind, "sample_rate": np.nan, "channels": np.nan, "seconds": np.nan}
    if kind in AUDIO_KINDS:
        try:
            with _silent_native_stderr():
                header = soundfile.info(str(path))
            info.update(sample_rate=header.samplerate, channels=header.channels, seconds=header.duration)
        except Exception:
            pass  # unreadable: the kind alone is the description
    return info


def image_info(path: Path | str) -> dict:
    kind = sniff_file(path)
    info = {"kind": kind, "width": np.nan, "height": np.nan, "mode": ""}
    if kind in IMAGE_KINDS:
        try:
            from PIL import Image
            with Image.open(path) as image:
                info.update(width=image.width, height=image.height, mode=image.mode)
        except Exception:
            pass
    return info


def tags(path: Path | str) -> dict[str, str]:
    """Every text tag a file carries (ID3, Vorbis comments, RIFF INFO, EXIF), as
    'key' -> 'value'. A tag is where a scraper leaves a species name or a date."""
    found: dict[str, str] = {}
    kind = sniff_file(path)
    if kind in AUDIO_KINDS:
        try:
            import mutagen
            opened = mutagen.File(path)
            if opened is not None and opened.tags is not None:
                for key, value in opened.tags.items():
                    found[str(key).split(":")[0]] = _text(value)
        except Exception:
            pass
        try:
            import soundfile
            with _silent_native_stderr(), soundfile.SoundFile(str(path)) as handle:
                for key, value in handle.copy_metadata().items():
                    found.setdefault(key, str(value))
        except Exception:
            pass
    elif kind in IMAGE_KINDS:
        try:
            from PIL import Image
            with Image.open(path) as image:
                for key, value in image.getexif().items():
                    found[f"exif{key}"] = _text(value)
                for key, value in (image.info or {}).items():
                    if isinstance(value, (str, bytes)) and key not in ("icc_profile", "exif"):
                        found[str(key)] = _text(value)
        except Exception:
            pass
    return found


def _text(value) -> str:
    if isinstance(value, bytes):
        return value[:200].decode("utf-8", "replace")
    text = getattr(value, "text", None)
    if text is not None:
        return " ".join(map(str, text))[:200]
    return str(value)[:200]


def write_audio(path: Path | str, samples: np.ndarray, sample_rate: int, kind: str = "mp3",
                constant_bitrate: bool = False) -> Path:
    """Encode audio to `kind` (mp3, wav, flac, ogg) with no tags at all, atomically."""
    from common.io import write_bytes
    return write_bytes(path, encode_audio(samples, sample_rate, kind, constant_bitrate))


ENCODINGS = {"mp3": ("MP3", "MPEG_LAYER_III"), "wav": ("WAV", "PCM_16"), "flac": ("FLAC", "PCM_16"), "ogg": ("OGG", "VORBIS")}


def encode_audio(samples: np.ndarray, sample_rate: int, kind: str = "mp3", constant_bitrate: bool = False) -> bytes:
    """Audio encoded as `kind` (mp3, wav, flac, ogg), with no tags. An MP3 is variable
    bitrate unless `constant_bitrate`: then its size says its duration and nothing of
    its content."""
    import soundfile
    if kind not in ENCODINGS:
        raise ValueError(f"cannot encode {kind!r}; known: {', '.join(ENCODINGS)}")
    container, subtype = ENCODINGS[kind]
    buffer = io.BytesIO()
    options = {"bitrate_mode": "CONSTANT", "compression_level": 0.5} if constant_bitrate and kind == "mp3" else {}
    soundfile.write(buffer, np.clip(samples, -1.0, 1.0), sample_rate, format=container, subtype=subtype, **options)
    return buffer.getvalue()
