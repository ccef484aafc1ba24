"""Audio read by its bytes: container sniffing, WAV data in .mp3 files, truncated and
corrupt downloads, resampling and downmixing, and the log-mel cache."""
from __future__ import annotations

import numpy as np
import pytest

from common import media
from common import spectrograms


def tone(seconds=1.0, rate=44100, channels=1, frequency=2000.0):
    t = np.arange(int(seconds * rate)) / rate
    wave = (0.5 * np.sin(2 * np.pi * frequency * t)).astype(np.float32)
    return np.stack([wave, 0.5 * wave], axis=1) if channels == 2 else wave


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPETE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_sniff_names_containers_by_magic_bytes():
    assert media.sniff(media.encode_audio(tone(0.2), 16000, "wav")[:16]) == "wav"
    assert media.sniff(media.encode_audio(tone(0.2), 16000, "mp3")[:16]) == "mp3"
    assert media.sniff(media.encode_audio(tone(0.2), 16000, "flac")[:16]) == "flac"
    assert media.sniff(media.encode_audio(tone(0.2), 16000, "ogg")[:16]) == "ogg"
    assert media.sniff(b"ID3\x03\x00\x00\x00\x00\x00\x00") == "mp3"
    assert media.sniff(b"") == "empty"
    assert media.sniff(b"<!DOCTYPE html><html>") == "html"
    assert media.sniff(b"\x00\x01\x02\x03\x04\x05") == "unknown"


def test_wav_bytes_in_an_mp3_file_decode_as_wav_resampled_and_downmixed(tmp_path):
    path = tmp_path / "ABC123.mp3"
    path.write_bytes(media.encode_audio(tone(1.5, 44100, channels=2), 44100, "wav"))
    audio = media.read_audio(path, sample_rate=16000)
    assert audio.kind == "wav" and audio.channels == 2 and audio.sample_rate == 16000
    assert audio.samples.ndim == 1 and abs(len(audio.samples) - 24000) <= 2
    spectrum = np.abs(np.fft.rfft(audio.samples))
    assert abs(np.argmax(spectrum) * 16000 / len(audio.samples) - 2000) < 5  # the tone survived resampling


def test_mp3_with_an_id3_tag_decodes(tmp_path):
    tag = b"ID3\x03\x00\x00\x00\x00\x00\x0f" + b"TSSE\x00\x00\x00\x05\x00\x00\x00LAME"
    path = tmp_path / "x.mp3"
    path.write_bytes(tag + media.encode_audio(tone(1.0, 22050), 22050, "mp3"))
    audio = media.read_audio(path)
    assert audio.kind == "mp3" and audio.sample_rate == 22050 and 0.9 < audio.seconds < 1.2


@pytest.mark.parametrize("content, reason", [
    (b"", "empty"),
    (b"<!DOCTYPE html>\n<html><body>503 Service Unavailable</body></html>", "html"),
    (bytes(range(256)) * 20, "unrecognised bytes"),
])
def test_corrupt_files_raise_a_reason(tmp_path, content, reason):
    path = tmp_path / "bad.mp3"
    path.write_bytes(content)
    with pytest.raises(media.DecodeError, match=reason):
        media.read_audio(path)


def test_truncated_files_decode_what_is_there_or_say_why_not(tmp_path):
    full = media.encode_audio(tone(3.0, 22050), 22050, "mp3")
    half = tmp_path / "half.mp3"
    half.write_bytes(full[: len(full) // 2])
    assert 1.0 < media.read_audio(half).seconds < 2.0
    stub = tmp_path / "stub.mp3"
    stub.write_bytes(full[:120])
    with pytest.raises(media.DecodeError, match="no decodable audio"):
        media.read_audio(stub)
    wav = media.encode_audio(tone(2.0, 16000), 16000, "wav")
    cut = tmp_path / "cut.wav"
    cut.write_bytes(wav[: len(wav) // 2])
    assert 0.8 < media.read_audio(cut).seconds < 1.1


def test_log_mel_is_cached_by_content_and_failures_are_remembered(tmp_path, cache, monkeypatch):
    good = tmp_path / "good.mp3"
    good.write_bytes(media.encode_audio(tone(2.0, 16000), 16000, "mp3"))
    bad = tmp_path / "bad.mp3"
    bad.write_bytes(b"<html>gone</html>")
    first = spectrograms.compute([good, bad, None], quiet=True)
    assert first[0].shape[0] == spectrograms.SETTINGS.n_mels and abs(first[0].shape[1] - 2.0 * spectrograms.SETTINGS.frames_per_second) <= 4
    assert first[0].dtype == np.float16
    assert "html" in first[1] and first[2] == "file not found"
    # The band of the 2 kHz tone is the loudest.
    import librosa
    centres = librosa.mel_frequencies(spectrograms.SETTINGS.n_mels + 2, fmin=spectrograms.SETTINGS.fmin, fmax=spectrograms.SETTINGS.fmax)[1:-1]
    assert abs(centres[first[0].astype(float).mean(axis=1).argmax()] - 2000) < 150

    def refuse(*args, **kwargs):
        raise AssertionError("recomputed a cached clip")
    monkeypatch.setattr(spectrograms, "_compute_one", refuse)
    renamed = tmp_path / "renamed.mp3"
    renamed.write_bytes(good.read_bytes())
    again = spectrograms.compute([renamed, bad], quiet=True)
    assert np.array_equal(again[0], first[0]) and again[1] == first[1]
