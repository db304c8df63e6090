"""Sweep reports in a real browser: Debian's headless Chromium opens report.html from disk.

Chromium is driven with Playwright's Python package, launched on
/usr/bin/chromium by the `browser` fixture (tests/conftest.py, one per test
process; scripts/install-system-deps installs chromium; Playwright's own
browser download is never used). The page is opened as a file:// URL, with
no server, as a user would open it.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from conftest import Project, make_project
from playwright.sync_api import BrowserContext, Page
from test_report import report_line, sweep_runs

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def open_report(browser: BrowserContext, path: Path) -> tuple[Page, list[str]]:
    """The report opened from disk, and a list that collects the page's script errors."""
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(path.as_uri())
    return page, errors


def swept(project: Project, *args: str) -> tuple[str, Path, subprocess.CompletedProcess]:
    done = project.batch("+experiment=demo", *args)
    path = report_line(done.stdout)
    (sweep,) = project.cosmos_json("list", "sweeps")
    return sweep["id"], path, done


def screenshot(page: Page, path: Path) -> Path:
    page.screenshot(path=str(path), full_page=True)
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 10_000
    return path


def test_the_demo_report_in_chromium(
    demo_done: Project, browser: BrowserContext, tmp_path: Path
) -> None:
    (sweep,) = demo_done.cosmos_json("list", "sweeps")
    path = demo_done.outputs / "sweeps" / sweep["id"] / "report.html"
    assert path.is_file(), "cosmos-batch wrote no report"
    runs = sweep_runs(demo_done, sweep["id"])
    page, errors = open_report(browser, path)

    # One cell per run of the sweep.
    ids = page.locator("figure.run").evaluate_all("els => els.map(e => e.dataset.runId)")
    assert sorted(ids) == sorted(runs) and len(ids) == 12

    # A 3x2 grid per prompt: depth weights down, seeds across.
    sections = page.locator("section.section")
    assert sections.locator("h2").all_inner_texts() == ["prompt = street", "prompt = forest"]
    for index, prompt in enumerate(("street", "forest")):
        section = sections.nth(index)
        assert section.locator("th.corner").inner_text() == "model.weights.depth \\ model.seed"
        assert section.locator("th.col-label").all_inner_texts() == ["1", "2"]
        assert section.locator("th.row-label").all_inner_texts() == ["0.3", "0.5", "0.8"]
        rows = section.locator("tbody tr")
        for row_index, depth in enumerate(("0.3", "0.5", "0.8")):
            for col_index, seed in enumerate(("1", "2")):
                cell = rows.nth(row_index).locator("td").nth(col_index).locator("figure.run")
                assert cell.count() == 1
                shown = cell.locator("dl.params").inner_text().split()
                assert shown == ["prompt", prompt, "model.weights.depth", depth, "model.seed", seed]

    # Every thumbnail loads once it is scrolled into view.
    images = page.locator("figure.run img")
    assert images.count() == 12
    for index in range(images.count()):
        image = images.nth(index)
        assert image.get_attribute("loading") == "lazy"
        image.scroll_into_view_if_needed()
        loaded = image.evaluate(
            "img => img.complete ? img.naturalWidth > 0 : new Promise(done => {"
            " img.onload = () => done(img.naturalWidth > 0); img.onerror = () => done(false); })"
        )
        assert loaded is True, image.get_attribute("src")

    page.evaluate("window.scrollTo(0, 0)")
    shot = screenshot(page, tmp_path / "demo-report.png")
    print(f"screenshot: {shot}")

    # A click on a thumbnail plays its video in place.
    first = page.locator("figure.run").first
    run_id = first.get_attribute("data-run-id")
    first.locator("a.play").click()
    video = first.locator("video")
    assert video.count() == 1
    assert video.get_attribute("preload") == "none"
    assert video.evaluate("v => v.src").endswith(f"/runs/{run_id}/output.mp4")
    duration = video.evaluate(
        "v => v.readyState > 0 ? v.duration : new Promise(done => {"
        " v.onloadedmetadata = () => done(v.duration); v.onerror = () => done(-1); })"
    )
    assert duration > 0  # the video loaded and plays
    assert errors == []


def test_failed_runs_are_marked_in_chromium(browser: BrowserContext, tmp_path: Path) -> None:
    project = make_project(tmp_path / "proj")
    sweep_id, path, done = swept(project, "simulator.fail_on_seed=2")
    assert done.returncode == 1
    runs = sweep_runs(project, sweep_id)
    page, errors = open_report(browser, path)

    failed = page.locator('figure.run[data-status="failed"]')
    expected = sorted(run_id for run_id, status in runs.items() if status == "failed")
    assert sorted(failed.evaluate_all("els => els.map(e => e.dataset.runId)")) == expected
    assert len(expected) == 6
    for index in range(failed.count()):
        cell = failed.nth(index)
        assert "model.seed\n2" in cell.locator("dl.params").inner_text()
        assert cell.locator(".mark").inner_text() == "FAILED"
        assert cell.locator(".mark").is_visible()
        assert cell.locator("img").count() == 0
        border = cell.evaluate("e => getComputedStyle(e).borderTopColor")
        assert border == "rgb(207, 34, 46)"  # red
    succeeded = page.locator('figure.run[data-status="succeeded"]')
    assert succeeded.count() == 6
    assert succeeded.first.evaluate("e => getComputedStyle(e).borderTopColor") != (
        "rgb(207, 34, 46)"
    )
    badges = page.locator("#counts .badge").all_inner_texts()
    assert badges == ["6 succeeded", "6 failed"]
    shot = screenshot(page, tmp_path / "failed-report.png")
    print(f"screenshot: {shot}")
    assert errors == []


def test_cancelled_runs_are_framed_orange_in_chromium(
    browser: BrowserContext, tmp_path: Path
) -> None:
    project = make_project(tmp_path / "proj")
    process = project.start_batch(
        "+experiment=demo", env={"COSMOS_SIMULATOR__PER_VIDEO_S": "0.5"}, capture=True
    )
    project.wait_for_ledger(1)
    os.killpg(process.pid, signal.SIGINT)  # Ctrl-C
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    page, errors = open_report(browser, report_line(stdout))
    cancelled = page.locator('figure.run[data-status="cancelled"]')
    assert cancelled.count() > 0
    for index in range(cancelled.count()):
        cell = cancelled.nth(index)
        assert cell.locator(".mark").inner_text() == "CANCELLED"
        assert cell.evaluate("e => getComputedStyle(e).borderTopColor") == "rgb(188, 76, 0)"
    assert errors == []


def test_each_cell_links_its_4k_upscale_in_chromium(browser: BrowserContext, ran_once) -> None:
    project = ran_once("+experiment=demo_stages")
    done = project.first_run
    assert done.returncode == 0, done.stdout + done.stderr
    page, errors = open_report(browser, report_line(done.stdout))
    cells = page.locator("figure.run")
    assert cells.count() == 6
    for index in range(cells.count()):
        cell = cells.nth(index)
        run_id = cell.get_attribute("data-run-id")
        (child,) = project.cosmos_json("show", run_id)["children"]
        link = cell.locator("a.upscale-video")
        assert link.count() == 1 and link.is_visible()
        assert link.evaluate("a => a.href").endswith(f"/runs/{child['id']}/output.mp4")
        href = link.get_attribute("href")
        assert (report_line(done.stdout).parent / href).resolve().is_file(), href
    assert errors == []
