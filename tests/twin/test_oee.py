"""OEE against a hand-worked example (ISO 22400-2 definitions), range cuts, shifts and the line figure."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from linewatch.twin.events import StateEvent
from linewatch.twin.model import line_from_dict
from linewatch.twin.oee import compute_oee

EXACT = {"abs": 1e-12}


def at(hhmm: str) -> float:
    return datetime.fromisoformat(f"2024-03-04T{hhmm}:00").replace(tzinfo=UTC).timestamp()


LINE = line_from_dict(
    {
        "name": "hand",
        "shifts": [
            {"name": "early", "start": "08:00", "end": "12:00"},
            {"name": "late", "start": "12:00", "end": "16:00"},
        ],
        "machines": [
            {"name": "press", "operation": "press", "cycle_time_s": 60},
            {"name": "oven", "operation": "bake", "cycle_time_s": 100},
        ],
    }
)

# press, 08:00-16:00: running 2 h | down (jam) 30 min | running 1.5 h | maintenance 30 min | starved 30 min |
# running 3 h
EVENTS = [
    StateEvent("press", at("08:00"), "running", product="part"),
    StateEvent("press", at("10:00"), "down", "jam", good=110, defective=5, reworked=2),
    StateEvent("press", at("10:30"), "running"),
    StateEvent("press", at("12:00"), "maintenance", "planned", good=85),
    StateEvent("press", at("12:30"), "starved"),
    StateEvent("press", at("13:00"), "running"),
    StateEvent("press", at("16:00"), "idle", "off shift", good=170, defective=5, reworked=3),
    # the oven runs all day at 100 s per part, 6 defective scrapped
    StateEvent("oven", at("08:00"), "running"),
    StateEvent("oven", at("16:00"), "idle", "off shift", good=260, defective=6),
]


def test_hand_worked_machine():
    """POT 8 h = 28,800 s; planned downtime (maintenance) 1,800 s, so PBT 27,000 s; APT = 7,200 + 5,400 + 10,800 =
    23,400 s. PQ = 115 + 85 + 175 = 375, GQ = 365 (10 defective: 5 reworked, 5 scrapped), PRI = 60 s.
    availability 23,400 / 27,000 = 13/15; effectiveness 60 x 375 / 23,400 = 25/26; quality 365/375 = 73/75;
    OEE = 73/90 = GQ x PRI / PBT. Losses: jam 1,800 s, starved 1,800 s, speed 900 s, scrap 300 s, rework 300 s,
    which with the good parts' 21,900 s add up to PBT."""
    rep = compute_oee(EVENTS, at("08:00"), at("16:00"), LINE)
    assert not rep.rejected
    press = rep.machines[0]
    assert (press.pot_s, press.pdot_s, press.pbt_s, press.apt_s) == (28800, 1800, 27000, 23400)
    assert press.availability == pytest.approx(13 / 15, **EXACT)
    assert press.performance == pytest.approx(25 / 26, **EXACT)
    assert press.quality == pytest.approx(73 / 75, **EXACT)
    assert press.oee == pytest.approx(73 / 90, **EXACT)
    assert (press.good, press.scrap, press.rework) == (365, 5, 5)
    losses = press.losses()
    assert losses["downtime_s"] == {"jam": 1800}
    assert losses["delay_s"] == {"starved": 1800}
    assert losses["speed_loss_s"] == pytest.approx(900, **EXACT)
    assert (losses["scrap_loss_s"], losses["rework_loss_s"]) == (300, 300)
    parts = press.ideal_good_s + 1800 + 1800 + 900 + 300 + 300
    assert parts == pytest.approx(press.pbt_s, **EXACT)


def test_hand_worked_line_and_shifts():
    rep = compute_oee(EVENTS, at("08:00"), at("16:00"), LINE)
    oven = rep.machines[1]
    assert oven.availability == 1 and oven.performance == pytest.approx(26600 / 28800, **EXACT)
    assert oven.quality == pytest.approx(260 / 266, **EXACT)
    line = rep.line  # summed times, rolled throughput yield
    assert line.availability == pytest.approx((23400 + 28800) / (27000 + 28800), **EXACT)
    assert line.performance == pytest.approx((22500 + 26600) / (23400 + 28800), **EXACT)
    assert line.quality == pytest.approx(73 / 75 * 260 / 266, **EXACT)
    # output view: 260 good parts out of the oven x the line's ideal cycle (its slowest operation, 100 s) / 8 h
    assert line.output_oee == pytest.approx(260 * 100 / 28800, **EXACT)
    early, late = rep.shifts
    assert early[0].startswith("early 2024-03-04") and late[0].startswith("late 2024-03-04")
    e_press, l_press = early[3][0], late[3][0]
    # early: PBT 14,400 s, 195 good of 200; late: PBT 12,600 s (maintenance), 170 good of 175
    assert e_press.oee == pytest.approx(195 * 60 / 14400, **EXACT)
    assert l_press.oee == pytest.approx(170 * 60 / 12600, **EXACT)
    assert e_press.down_s == {"jam": 1800} and l_press.pdot_s == 1800


def test_range_cut_shares_counts_by_running_time():
    rep = compute_oee(EVENTS, at("09:00"), at("11:00"), LINE)
    press = rep.machines[0]
    assert press.apt_s == 3600 + 1800 and press.down_s == {"jam": 1800}
    # [08:00, 10:00) reported 115 parts: half of it is in range; [10:30, 12:00) reported 85: a third
    assert press.good == pytest.approx(110 / 2 + 85 / 3, **EXACT)
    assert press.scrap == pytest.approx(3 / 2, **EXACT) and press.rework == pytest.approx(1, **EXACT)


def test_time_before_first_event_is_no_data_and_off_shift_is_not_planned():
    rep = compute_oee(EVENTS[2:7], at("06:00"), at("20:00"), LINE)
    press = rep.machines[0]
    assert press.pot_s == 8 * 3600  # shifts only
    assert press.no_data_s == 2.5 * 3600 and press.pbt_s == 8 * 3600 - 1800 - 2.5 * 3600


def test_without_a_model_ideal_times_by_machine():
    rep = compute_oee(EVENTS[:7], at("08:00"), at("16:00"), ideal_cycle_s={"press": 60})
    assert rep.machines[0].pot_s == 28800 and rep.machines[0].pdot_s == 1800
    assert rep.machines[0].oee == pytest.approx(73 / 90, **EXACT)


def test_impossible_events_are_left_out_and_reported():
    bad = [*EVENTS, StateEvent("press", at("16:30"), "blocked"), StateEvent("mixer", at("09:00"), "running")]
    rep = compute_oee(bad, at("08:00"), at("16:00"), LINE)
    reasons = [why for _, why in rep.rejected]
    assert any("blocked right after idle" in r for r in reasons)
    assert any("unknown machine 'mixer'" in r for r in reasons)
    assert rep.machines[0].oee == pytest.approx(73 / 90, **EXACT)
