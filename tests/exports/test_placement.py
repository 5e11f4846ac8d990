"""The placement table's readings of a run: embedding rate from the mix, the assumed
co-host slowdown, and the budget counted once per shared GPU."""

from __future__ import annotations

from types import SimpleNamespace

from exports.tables.placement import chat_load, class_rate, embedding_rate, slowdown


def run(rate, mix, backends):
    config = {"workload": {"rate": rate, "mix": mix}, "backends": backends}
    return SimpleNamespace(id=1, name="r", offered_rate=rate, config=config,
                           section=lambda k: config[k])


def test_embedding_rate_is_the_mix_share_of_the_rate():
    assert embedding_rate(run(560, {"chat": 160, "embedding": 400}, [])) == 400


def test_slowdown_names_the_override_the_preset_or_no_sharing():
    pair = [{"name": "g", "host": "gpu0"}, {"name": "e", "host": "gpu0"}]
    assert slowdown(run(1, {"chat": 1}, pair)) == "preset"
    pair[0]["cohost_slowdown"] = 0.4
    assert slowdown(run(1, {"chat": 1}, pair)) == "0.4"
    assert slowdown(run(1, {"chat": 1}, [{"name": "g"}, {"name": "e"}])) == "-"


def relative_run(rate, mix, run_section, fraction):
    config = {"workload": {"rate": rate, "mix": mix}, "backends": [], "run": run_section}
    return SimpleNamespace(id=1, name="r", offered_rate=rate, config=config,
                           section=lambda k: config[k], load_fraction=fraction)


def test_chat_load_is_read_only_where_chat_was_set_relative():
    mix = {"chat": 260.0, "embedding": 400.0}
    chat = relative_run(660, mix, {"load_class": "chat"}, 1.3)
    assert chat_load(chat) == 1.3
    assert class_rate(chat, "chat") == 260 and embedding_rate(chat) == 400
    assert chat_load(relative_run(660, mix, {}, 1.3)) == 0.0  # the whole rate was relative
    assert chat_load(relative_run(660, mix, {"load_class": "chat"}, None)) == 0.0
