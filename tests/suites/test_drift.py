"""The drift check: lone requests of the probe, now against the profile."""

from __future__ import annotations

import numpy as np
import pytest

from sagetui.suites.drift import LONE_IDLE_S, lone_indices, machine_speed

CAL = {"llm": {"cost": {"beta1": 1e-5}}, "embedding": {"cost": {"a": 0.01, "b": 0.001}}}


def _row(cls, t, ttft=None, done=None, prompt=100):
    return {"request_class": cls, "status": "completed", "t_dispatched": t,
            "t_first_token": None if ttft is None else t + ttft,
            "t_done": done if done is not None else t + (ttft or 0) + 0.05,
            "prompt_tokens": prompt}


def test_lone_means_idle_before_and_nothing_sent_until_it_finished():
    rows = [_row("chat", 0.0, 0.01),            # first of the run: idle unknown
            _row("chat", 0.2, 0.01),            # idle 0.14 s, alone until its first token
            _row("chat", 0.27, 0.01),           # idle 0.01 s after the previous one: too short
            _row("chat", 0.6, 0.02),            # another sent before its first token
            _row("embedding", 0.61, done=0.7),  # sent while the chat was open
            _row("embedding", 1.0, done=1.05)]  # idle, alone until done
    got = lone_indices(rows, "t_first_token")
    assert [i for i, _ in got] == [1]
    assert got[0][1] == pytest.approx(0.14)
    assert [i for i, _ in lone_indices(rows, "t_done")] == [1, 5]
    assert rows[2]["t_dispatched"] - rows[1]["t_done"] < LONE_IDLE_S


def _probe(rng, slow_chat=1.0, slow_embed=1.0, n=40):
    """Alternating lone chat and embedding requests 0.3 s apart."""
    rows = []
    for k in range(n):
        t = 0.3 * k
        if k % 2:
            rows.append(_row("chat", t, ttft=slow_chat * (0.012 + 0.001 * rng.random())
                             + CAL["llm"]["cost"]["beta1"] * 100))
        else:
            tokens = int(rng.integers(32, 256))
            line = 0.01 + 0.001 * tokens
            rows.append(_row("embedding", t, done=t + slow_embed * line
                             * (1 + 0.02 * rng.random()), prompt=tokens))
    return rows


def test_a_slower_machine_shows_in_its_class_only():
    rng = np.random.default_rng(1)
    speed = machine_speed([_probe(rng)], [_probe(rng, slow_chat=1.10)], CAL)
    assert speed["chat"]["change"] == pytest.approx(0.10, abs=0.02)
    assert speed["chat"]["p_value"] < 0.001
    assert abs(speed["embedding"]["change"]) < 0.01
    assert speed["chat"]["n_profile"] == speed["chat"]["n_live"] == 20
    assert speed["embedding"]["n_live"] == 19  # the run's first request is never lone


def test_too_few_lone_requests_give_no_figure():
    rng = np.random.default_rng(2)
    speed = machine_speed([_probe(rng)], [_probe(rng, n=6)], CAL)
    assert speed["chat"]["n_live"] == 3 and speed["chat"]["change"] is None
    assert speed["chat"]["p_value"] is None


def test_runs_are_searched_apart():
    """Two runs' clocks overlap; a request of one never makes another's busy."""
    rng = np.random.default_rng(3)
    a, b = _probe(rng), _probe(rng)
    for r in b:  # the second run's stamps shifted by 1 ms: interleaved with the first's
        r["t_dispatched"] += 0.001
        r["t_first_token"] = None if r["t_first_token"] is None else r["t_first_token"] + 0.001
        r["t_done"] += 0.001
    speed = machine_speed([a, b], [a], CAL)
    assert speed["chat"]["n_profile"] == 2 * speed["chat"]["n_live"]


def _suite_with(tmp_path, old, new):
    from sagetui.suites import find_suite, load_suite

    text = find_suite("fidelity").text
    assert old in text
    path = tmp_path / "fidelity.toml"
    path.write_text(text.replace(old, new, 1))
    return load_suite(path)


@pytest.mark.parametrize(("old", "new", "message"), [
    ('probe = "probe"', 'probe = "nope"', r"fidelity\.probe: 'nope' is not one of"),
    ('name = "probe"\nfit = false', 'name = "probe"\nfit = "no"', r"fidelity\.phases\[probe\]\.fit: true or false"),
])
def test_a_bad_probe_setting_is_refused_naming_the_field(tmp_path, old, new, message):
    from sagetui.config import ConfigError
    from sagetui.suites import fidelity

    suite = _suite_with(tmp_path, old, new)
    with pytest.raises(ConfigError, match=message) as err:
        fidelity.plan(suite, quick=False)
    assert str(tmp_path) in str(err.value)


def test_describe_names_each_class_and_says_when_too_few():
    from sagetui.suites.drift import describe

    line = describe({"chat": {"change": 0.031, "p_value": 0.012, "n_profile": 30, "n_live": 28},
                     "embedding": {"change": None, "p_value": None, "n_profile": 3, "n_live": 2}})
    assert line == "chat +3.1% (p 0.012; 30/28 lone), embedding — (3/2 lone, too few)"
