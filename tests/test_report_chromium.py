"""The HTML report of a rejected file, opened in headless Chromium (Debian's `chromium`, installed by
`make chromium`, which `make test` runs first): the verdict read back from the page Chromium built,
a hostile name left as text, and a screenshot of the French page of a drop in `api-import-ecrit`
(copied to $REPORT_SCREENSHOT when set, which is how `make report-screenshot` makes
docs/report-rejected.png). Chromium missing is a failure, not a skip."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from shared.flows.runtime import current_pipeline
from shared.flows.verdict_reports import report_blob_names
from tests.helpers import run_host_until_final, upload
from tests.test_verdict_reports import HOSTILE, INVALID_LINE, broken

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--hide-scrollbars", "--mute-audio"]


@pytest.fixture(scope="module")
def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.fail("Debian's chromium is not installed: run `make chromium` (apt-get install chromium); "
                    "`make test` does it first")
    return path


@pytest.fixture
def host_env(pipeline_env, request):
    """The rejected page's drop looks like a real one: the watched container is `api-import-ecrit`
    (the default), so the screenshot in docs/ shows what a dropper sees."""
    if "rejected" in request.node.name:
        return {**pipeline_env, "FEC_IMPORT_CONTAINER": "api-import-ecrit"}
    return pipeline_env


def run_chromium(chromium: str, tmp_path: Path, *args: str) -> str:
    profile = tmp_path / "profile"
    profile.mkdir(exist_ok=True)
    result = subprocess.run(
        [chromium, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True, timeout=90,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def saved_page(name: str, tmp_path: Path) -> Path:
    """The HTML report as the dropper downloads it from the reports container."""
    _, html_name = report_blob_names(name)
    page = tmp_path / "report.html"
    container = current_pipeline().verdict_reports.container
    page.write_bytes(container.get_blob_client(html_name).download_blob().readall())
    return page


def test_the_rejected_report_reads_rejected_in_chromium(host, fec_bytes, chromium, tmp_path):
    name = "DEMO001/123456789FEC20241231.txt"  # the fixture's entries are of 2024: within its fiscal year
    upload(current_pipeline(), name, broken(fec_bytes))
    run_host_until_final(host, count=1)
    page = saved_page(name, tmp_path)
    dom = run_chromium(chromium, tmp_path, "--dump-dom", page.as_uri())
    verdict = re.search(r'<h1 id="verdict">([^<]*)</h1>', dom)
    assert verdict is not None, dom[:500]
    assert verdict.group(1) == "Refusé : non envoyé à Loop"
    assert f"<td>ligne {INVALID_LINE}</td><td>EcritureDate</td>" in dom
    picture = tmp_path / "report-rejected.png"
    run_chromium(chromium, tmp_path, f"--screenshot={picture}", "--window-size=1100,980", page.as_uri())
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("REPORT_SCREENSHOT"):
        shutil.copy(picture, os.environ["REPORT_SCREENSHOT"])


def test_a_hostile_name_is_text_in_the_page_chromium_builds(host, fec_bytes, chromium, tmp_path):
    upload(current_pipeline(), HOSTILE, broken(fec_bytes))
    run_host_until_final(host, count=1)
    dom = run_chromium(chromium, tmp_path, "--dump-dom", saved_page(HOSTILE, tmp_path).as_uri())
    assert "<script" not in dom  # no element was made of it
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom
