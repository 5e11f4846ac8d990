"""The fidelity appendix table: sim vs live per load, with the live noise floor and
the machine's drift."""

from __future__ import annotations

import json

from fixture_store import Builder, config, summary

from exports.api import export
from exports.selection import Selection


def _block(rate, live_run, noise=True):
    errors = {"chat.ttft.p99": {"live_ms": 30.0, "sim_ms": 33.0, "rel_error": 0.1},
              "all.throughput_rps": {"live": 10.0, "sim": 9.5, "rel_error": -0.05}}
    block = {"rate": rate, "live_run": live_run, "errors": errors}
    if rate == 5:  # a drift probe ran before this load
        block["machine_speed"] = {"chat": {"change": 0.031, "p_value": 0.2},
                                  "embedding": {"change": None, "p_value": None}}
    if noise:  # two live runs, pooled as the reference
        block["live_runs"] = [live_run, live_run + 1]
        block["live_noise"] = {"chat.ttft.p99": {"live_ms": 30.0, "sim_ms": 36.0,
                                                 "rel_error": 0.2}}
    return {"fidelity": block}


def test_rows_carry_sim_error_and_live_repeat(tmp_path):
    db = tmp_path / "f.db"
    b = Builder(db)
    exp = b.experiment("fidelity", suite="fidelity")
    b.run(exp, "fidelity/sim[rate=5]-0", config(), 0, summary(10.0, extra=_block(5, 1)))
    b.run(exp, "fidelity/sim[rate=10]-0", config(), 0,
          summary(10.0, extra=_block(10, 3, noise=False)))
    b.close()
    export(db, fmt="json", selection=Selection(suite="fidelity"), out_dir=tmp_path / "o",
           table="fidelity")
    rows = json.loads((tmp_path / "o" / "fidelity.json").read_text())["rows"]
    by = {(r["rate"], r["stat"]): r for r in rows}
    assert by[("5", "chat.ttft.p99 (ms)")]["error"] == 10.0
    assert by[("5", "chat.ttft.p99 (ms)")]["noise"] == 20.0
    assert by[("5", "all.throughput_rps (req/s)")]["noise"] is None  # not repeated
    assert by[("10", "chat.ttft.p99 (ms)")]["noise"] is None  # this load ran live once
    assert by[("10", "all.throughput_rps (req/s)")]["error"] == -5.0
    assert by[("5", "chat.ttft.p99 (ms)")]["drift"] == 3.1  # the chat class's probe
    assert by[("5", "all.throughput_rps (req/s)")]["drift"] is None  # no class of its own
    assert by[("10", "chat.ttft.p99 (ms)")]["drift"] is None  # no probe at this load
    sim5, sim10 = sorted({r["runs"].split("/")[1] for r in rows}, key=int)
    assert by[("5", "chat.ttft.p99 (ms)")]["runs"] == f"1+2/{sim5}"  # pooled reference
    assert by[("10", "chat.ttft.p99 (ms)")]["runs"] == f"3/{sim10}"  # older blocks


def _errors(n_within: int, n: int, key: str = "errors") -> dict:
    return {key: {f"s{i}": {"live_ms": 10.0, "sim_ms": 10.0,
                            "rel_error": 0.05 if i < n_within else 0.2} for i in range(n)}}


def test_verdict_holds_misses_or_refuses_on_a_machine_that_did_not_repeat():
    from exports.tables.fidelity import verdict
    steady = _errors(7, 7, "live_noise")
    blocks = [{**_errors(6, 7), **steady} for _ in range(3)]  # 18 of 21
    assert verdict(blocks).startswith("holds: 18 of 21")
    blocks[0] = {**_errors(5, 7), **steady}  # 17 of 21
    assert verdict(blocks).startswith("misses: 17 of 21")
    blocks = [{**_errors(7, 7), **_errors(5, 7, "live_noise")} for _ in range(3)]
    said = verdict(blocks)  # a perfect simulator, but live moved: 15 of 21 repeat
    assert said.startswith("no verdict") and "15 of 21" in said and "21 of 21" in said
    assert verdict([_errors(7, 7)]).endswith("no live repeat")


def test_the_table_states_the_verdict(tmp_path):
    db = tmp_path / "f.db"
    b = Builder(db)
    exp = b.experiment("fidelity", suite="fidelity")
    b.run(exp, "fidelity/sim[rate=5]-0", config(), 0, summary(10.0, extra=_block(5, 1)))
    b.close()
    export(db, fmt="json", selection=Selection(suite="fidelity"), out_dir=tmp_path / "o",
           table="fidelity")
    notes = json.loads((tmp_path / "o" / "fidelity.json").read_text())["footnotes"]
    assert notes[0].startswith("Verdict: no verdict: the live repeat held only 0 of 1")
