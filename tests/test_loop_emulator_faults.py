"""The emulator refuses a fault it cannot apply, at once and by name, instead of hanging a request."""

from __future__ import annotations

import os

import pytest
import requests

from local.loop_emulator.faults import FAULT_KINDS, FaultError, check_faults
from local.loop_emulator.process import start_emulator_process


@pytest.mark.parametrize(
    ("faults", "fragment"),
    [
        ({"importFEC": [{"kind": "timeout"}]}, "unknown fault kind 'timeout' for importFEC: accepted are http, hang"),
        ({"status": [{"status": 503}]}, "unknown fault kind None for status"),
        ({"importFEC": [{"kind": "http"}]}, "an http fault for importFEC needs a status"),
        ({"transient_rat": 0.5}, "unknown fault setting 'transient_rat'"),
        ({"importFEC": {"kind": "http", "status": 503}}, "importFEC must be a list of faults"),
    ],
)
def test_an_unknown_fault_is_a_400_naming_what_is_accepted(loop_emulator, faults, fragment):
    response = requests.post(f"{loop_emulator.base_url}/_emulator/faults", json=faults, timeout=5)
    assert response.status_code == 400
    assert fragment in response.json()["error"]["message"]


def test_a_refused_fault_changes_nothing_and_the_helper_says_why(loop_emulator):
    with pytest.raises(requests.HTTPError, match=r"HTTP 400: .*unknown fault kind 'slow'"):
        loop_emulator.set_faults({"importFEC": [{"kind": "http", "status": 503}, {"kind": "slow"}]})
    response = requests.post(f"{loop_emulator.base_url}/importFEC", json={}, timeout=5)
    assert response.status_code == 401  # no queued 503: the refused request queued nothing


def test_a_body_that_is_not_json_is_a_400(loop_emulator):
    response = requests.post(f"{loop_emulator.base_url}/_emulator/faults", data=b"{not json", timeout=5)
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith("faults refused:")


def test_every_documented_kind_is_accepted():
    assert check_faults({"importFEC": [{"kind": kind, "status": 200} for kind in FAULT_KINDS]})
    with pytest.raises(FaultError):
        check_faults([{"kind": "http"}])


def test_unknown_faults_at_start_up_stop_the_emulator_with_the_reason():
    with pytest.raises(RuntimeError, match="LOOP_EMULATOR_FAULTS refused: unknown fault kind 'boom'"):
        start_emulator_process(env={**os.environ, "LOOP_EMULATOR_FAULTS": '{"status": [{"kind": "boom"}]}'})
