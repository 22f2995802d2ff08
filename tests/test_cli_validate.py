"""`python -m shared validate PATH [--json]`: exit codes 0/1/2 and the JSON shape."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from shared.cli.main import main
from tests.fec_factory import FecSpec
from tests.helpers import PROJECT_ROOT

FIXTURES = Path(__file__).parent / "fixtures"


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["validate", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_importable_file_exits_0_with_a_text_report(capsys):
    code, out, err = run(capsys, str(FIXTURES / "542107651FEC20210502.txt"))
    assert code == 0
    assert "importable" in out
    assert "3 lignes, 1 écriture, débit 1\u202f724,54\u00a0€" in out  # French by default
    assert err == ""


def test_lang_en_and_report_language_choose_english(capsys, monkeypatch):
    code, out, _ = run(capsys, "--lang", "en", str(FIXTURES / "542107651FEC20210502.txt"))
    assert code == 0
    assert "3 lines, 1 entry, debit €1,724.54" in out
    monkeypatch.setenv("REPORT_LANGUAGE", "en")
    assert "3 lines, 1 entry" in run(capsys, str(FIXTURES / "542107651FEC20210502.txt"))[1]
    monkeypatch.setenv("REPORT_LANGUAGE", "de")
    code, out, err = run(capsys, str(FIXTURES / "542107651FEC20210502.txt"))
    assert (code, out) == (2, "")
    assert "REPORT_LANGUAGE must be one of fr, en, got 'de'" in err


def test_a_bad_time_zone_is_a_clear_error_before_reading_and_json_needs_none(capsys, monkeypatch):
    monkeypatch.setenv("REPORT_TIMEZONE", "Mars/Base")
    code, out, err = run(capsys, str(FIXTURES / "542107651FEC20210502.txt"))
    assert (code, out) == (2, "")
    assert "REPORT_TIMEZONE must be an IANA time zone such as Europe/Paris, got 'Mars/Base'" in err
    code, out, _ = run(capsys, "--json", str(FIXTURES / "542107651FEC20210502.txt"))
    assert code == 0
    assert '"valid": true' in out


def test_a_real_sample_exits_0(odoo_sample, capsys):
    code, out, _ = run(capsys, "--lang", "en", str(odoo_sample))
    assert code == 0
    assert "5 lines, 1 entry, debit €7,760.45" in out


def test_warnings_alone_exit_0_and_are_listed(capsys):
    code, out, _ = run(capsys, str(FIXTURES / "123456789FEC20500930.txt"))
    assert code == 0
    assert "(0 erreur, 4 avertissements)" in out
    assert "avertissement line_ending_cr_cr_lf : ligne 1 :" in out
    assert "avertissement date_outside_period : ligne 2 : la date d'écriture 01/04/2022 est hors de l'exercice" in out  # closes 2050


def test_validate_imports_no_azure_sdk(tmp_path):
    """The validate command is a small process: no storage or table SDK (issue 11)."""
    probe = ("import sys, runpy; sys.argv = ['shared', 'validate', sys.argv[1]]\n"
             "try:\n    runpy.run_module('shared', run_name='__main__')\n"
             "except SystemExit:\n    pass\n"
             "print(sorted(name for name in sys.modules if name.startswith(('azure', 'requests', 'urllib3'))))")
    result = subprocess.run([sys.executable, "-c", probe, str(FIXTURES / "542107651FEC20210502.txt")],
                            cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60, check=True)
    assert "importable" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_errors_exit_1_and_json_has_the_documented_shape(tmp_path, capsys):
    spec = FecSpec()
    rows = spec.rows()
    rows[2][3] = "20191232"
    path = tmp_path / "123456789FEC20241231.txt"
    path.write_bytes(spec.render(rows))
    code, out, _ = run(capsys, str(path), "--json")
    assert code == 1
    report = json.loads(out)
    assert report["valid"] is False
    (error,) = report["errors"]
    assert error == {"rule": "invalid_date", "line": 3, "column": "EcritureDate", "value": "20191232",
                     "message": "EcritureDate 20191232 is not a date (AAAAMMJJ)"}
    assert report["warnings"] == []
    assert report["summary"]["records"] == 3


@pytest.mark.parametrize("target", ["missing.txt", "."])
def test_unreadable_paths_exit_2_with_one_line(tmp_path, capsys, target):
    code, out, err = run(capsys, str(tmp_path / target))
    assert code == 2
    assert out == ""
    assert err.startswith("error: ")
    assert err.count("\n") == 1


def test_bad_arguments_exit_2(capsys):
    assert main(["validate"]) == 2
    assert main(["validate", "a", "--frobnicate"]) == 2


def test_binary_file_is_a_clear_error_not_a_traceback(tmp_path):
    path = tmp_path / "picture.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 100)
    result = subprocess.run([sys.executable, "-m", "shared", "validate", str(path)], cwd=PROJECT_ROOT,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1
    assert "octets nuls" in result.stdout
    assert "Traceback" not in result.stderr
