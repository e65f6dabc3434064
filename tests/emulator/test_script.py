"""Scripts load, render deterministically, and place each word where its audio is."""

from __future__ import annotations

import array
import io
import itertools
import json
import os
import stat
import wave
from pathlib import Path

import pytest

from emulator import synth
from emulator.config import DEFAULT_SCRIPT_DIR
from emulator.script import FRAME_SECONDS, ScriptLibrary, load_script, render
from emulator.synth import EspeakSynthesizer, ToneSynthesizer


@pytest.fixture(scope="module")
def library() -> ScriptLibrary:
    return ScriptLibrary(DEFAULT_SCRIPT_DIR, ToneSynthesizer())


def test_the_bundled_scripts_have_the_promised_shape(library: ScriptLibrary) -> None:
    assert library.names() == ["bench_call", "billing_call", "short_call", "support_call"]
    support = library.rendered("support_call", 16000)
    assert 60 <= support.duration <= 90
    assert 12 <= len(support.utterances) <= 20
    assert len({u.speaker for u in support.utterances}) == 2
    short = library.rendered("short_call", 16000)
    assert short.duration <= 8
    assert support.script.caller.raw_id == "4:+14255550123"


def test_it_renders_the_same_audio_every_time(library: ScriptLibrary) -> None:
    script = library.load("short_call")
    first, second = render(script, 24000, ToneSynthesizer()), render(script, 24000, ToneSynthesizer())
    assert first.tracks == second.tracks
    assert first.utterances == second.utterances
    assert first.frame_bytes == 960


def test_words_sit_where_their_audio_is(library: ScriptLibrary) -> None:
    rendered = library.rendered("short_call", 16000)
    for utterance in rendered.utterances:
        samples = array.array("h", rendered.tracks[utterance.speaker])
        for word in utterance.words:
            middle = int((word.start + word.end) / 2 * 16000)
            assert max(abs(v) for v in samples[middle - 80 : middle + 80]) > 1000, word
        before = int(utterance.start * 16000) - 1
        assert samples[before] == 0
        assert [w.start for w in utterance.words] == sorted(w.start for w in utterance.words)


def test_frames_are_silent_between_lines(library: ScriptLibrary) -> None:
    rendered = library.rendered("short_call", 16000)
    agent, customer = rendered.utterances[0].speaker, rendered.utterances[1].speaker
    speaking_frame = int(rendered.utterances[0].start / FRAME_SECONDS) + 5
    data, silent = rendered.frame(agent, speaking_frame)
    assert len(data) == 640 and not silent
    data, silent = rendered.frame(customer, speaking_frame)
    assert data == bytes(640) and silent
    assert rendered.frame(agent, 10_000) == (bytes(640), True)


def test_it_uses_espeak_output_and_spreads_words_over_it(tmp_path: Path, monkeypatch) -> None:
    """A stand-in espeak-ng writes a WAV with the bogus sizes the real one uses on stdout."""
    samples = array.array("h", [0] * 2205 + [4000, -4000] * 11025 + [0] * 2205)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(22050)
        wav.writeframes(samples.tobytes())
    data = bytearray(buffer.getvalue())
    data[40:44] = (0x7FFFFFFF).to_bytes(4, "little")
    (tmp_path / "speech.wav").write_bytes(data)
    fake = tmp_path / "espeak-ng"
    fake.write_text(f"#!/bin/sh\ncat {tmp_path / 'speech.wav'}\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")

    assert isinstance(synth.default_synthesizer(), EspeakSynthesizer)
    clip = EspeakSynthesizer().synthesize(["Hello", "there,", "Dana."], synth.Voice("en-us", 200), 16000)
    assert abs(len(clip.pcm) / 2 / 16000 - 1.02) < 0.01  # 1 s of sound plus 10 ms margins, silence trimmed
    assert clip.words[0][0] == 0 and clip.words[-1][1] == pytest.approx(len(clip.pcm) / 2 / 16000)
    lengths = [end - start for start, end in clip.words]
    assert lengths[0] == pytest.approx(lengths[1])  # weights follow word length: 6, 6, 5
    assert lengths[2] == pytest.approx(lengths[0] * 5 / 6)


def test_it_loads_a_script_with_explicit_start_times(tmp_path: Path) -> None:
    path = tmp_path / "timed.json"
    path.write_text(
        '{"caller": "a", "callee": "b", "participants": ['
        '{"key": "a", "raw_id": "4:+15550001111", "display_name": "A"},'
        '{"key": "b", "raw_id": "8:acs:b", "display_name": "B"}],'
        '"utterances": [{"speaker": "a", "text": "Hello.", "start": 2.0},'
        ' {"speaker": "b", "text": "Hi.", "start": 2.5}]}'
    )
    rendered = render(load_script(path), 16000, ToneSynthesizer())
    assert [round(u.start, 3) for u in rendered.utterances] == [2.0, 2.5]
    assert rendered.script.name == "timed"


def test_the_bench_call_gives_each_party_a_unique_final_every_few_seconds_for_the_run(tmp_path: Path) -> None:
    # bench/lifecycle_load.py matches each final a viewer saw or the database stored to the one the
    # emulator sent by its text, and writes this script for each run's length.
    from bench.lifecycle_load import bench_call_script, write_bench_script

    write_bench_script(tmp_path, seconds=30, final_every=3)
    rendered = ScriptLibrary(tmp_path, ToneSynthesizer()).rendered("bench_call", 16000)
    assert 29 <= rendered.duration <= 31
    texts = [utterance.text for utterance in rendered.utterances]
    assert len(texts) == len(set(texts)) >= 16
    for speaker in {utterance.speaker for utterance in rendered.utterances}:
        ends = [utterance.end for utterance in rendered.utterances if utterance.speaker == speaker]
        assert all(2.9 <= later - earlier <= 3.1 for earlier, later in itertools.pairwise(ends))
    bundled = json.loads((DEFAULT_SCRIPT_DIR / "bench_call.json").read_text())
    assert bundled == bench_call_script(seconds=40, final_every=3)
