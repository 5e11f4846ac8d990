"""The brief's goodput-capacity claim: a ratio against each baseline with a CI over
seeds, honest when the aim is not reached."""

from __future__ import annotations

from exports.brief import _goodput_claim


def test_a_higher_goodput_capacity_holds_and_a_missed_aim_is_said():
    c = _goodput_claim([74.0, 74.0, 70.0], "colocated", [66.7, 63.0, 66.7], [1, 2])
    assert c.holds is True
    assert "1.11× colocated's" in c.text and "not reached" in c.text


def test_the_aim_reached_is_not_flagged_and_a_loss_does_not_hold():
    win = _goodput_claim([80.0, 82.0, 81.0], "split", [33.0, 35.0, 31.0], [1])
    assert win.holds is True and "not reached" not in win.text
    loss = _goodput_claim([60.0, 61.0, 59.0], "vllm-priority", [67.0, 66.0, 68.0], [1])
    assert loss.holds is False and "does not carry" in loss.text


def test_one_seed_per_side_is_untested():
    c = _goodput_claim([74.0], "colocated", [66.7], [1, 2])
    assert c.holds is None and "no CI" in c.text
