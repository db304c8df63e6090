"""`cosmos ui` in headless Chromium: the sweeps page, a sweep's live grid, the compare view.

The server is tests/ui_server.py's (uvicorn in a thread over a copy of the
demo); Chromium is the session's (tests/conftest.py `browser`). Each test
writes a screenshot under .work/ui-screens/; the sweep page's is also the
README's picture (docs/images/ui-sweep.png).
"""

from __future__ import annotations

import time
from typing import Any

import yaml
from conftest import REPO
from ui_server import UiServer, open_page, screenshot, wait_js

README_PICTURE = REPO / "docs" / "images" / "ui-sweep.png"
# A sweep slow enough to be watched: two runs of a few seconds each.
SLOW = {
    "name": "slow",
    "description": "Two slow runs (the simulated model takes its time).",
    "prompts": {
        "street": {"text": "A street, slowly.", "inputs": {"video": "inputs/demo/street/color.mp4"}}
    },
    "model": {"weights": {"depth": 0.4}},
    "sweep": {"grid": {"model.seed": [11, 12]}},
}


def the_demo_sweep(server: UiServer) -> str:
    (sweep,) = [s for s in server.api.list_sweeps() if s["name"] == "demo"]
    return sweep["id"]


def test_the_sweeps_page_lists_every_sweep_with_its_counts(
    ui_server: UiServer, browser: Any
) -> None:
    sweep_id = the_demo_sweep(ui_server)
    page, errors = open_page(browser, ui_server.url)
    row = page.locator(f'tr[data-sweep="{sweep_id}"]')
    assert row.locator("a").inner_text() == "demo"
    assert row.locator('[data-count="total"]').inner_text() == "12"
    assert row.locator('[data-count="succeeded"]').inner_text() == "12"
    assert row.locator('[data-field="stage"]').inner_text() == "main"
    page.locator("#live.on").wait_for(timeout=10_000)  # the live stream is open
    screenshot(page, "sweeps")
    row.locator("a").click()
    page.wait_for_url(f"**/sweeps/{sweep_id}")
    assert errors == []
    page.close()


def test_the_sweep_page_shows_one_cell_per_run_on_two_switchable_axes(
    ui_server: UiServer, browser: Any
) -> None:
    sweep_id = the_demo_sweep(ui_server)
    runs = {run["id"] for run in ui_server.api.list_runs(status="succeeded")}
    page, errors = open_page(browser, f"{ui_server.url}sweeps/{sweep_id}")
    cells = page.locator(".cell")
    assert sorted(cells.evaluate_all("els => els.map(e => e.dataset.run)")) == sorted(runs)
    sections = page.locator("section.section h2").all_inner_texts()
    assert sections == ["prompt = street", "prompt = forest"]
    corner = page.locator("th.corner").first.inner_text()
    assert corner == "model.weights.depth \\ model.seed"
    # Every thumbnail loads once scrolled into view.
    images = page.locator(".cell img")
    assert images.count() == 12
    for index in range(images.count()):
        image = images.nth(index)
        image.scroll_into_view_if_needed()
        assert image.evaluate(
            "img => img.complete ? img.naturalWidth > 0 : new Promise(done => {"
            " img.onload = () => done(img.naturalWidth > 0); img.onerror = () => done(false); })"
        ), image.get_attribute("src")
    page.evaluate("window.scrollTo(0, 0)")
    screenshot(page, "sweep", also=README_PICTURE)

    # The axes switch in the query string: seeds down, prompts across, depth as sections.
    page.select_option('select[name="rows"]', "model.seed")
    page.select_option('select[name="cols"]', "prompt")
    page.click('form.view button[type="submit"]')
    page.wait_for_url("**rows=model.seed**")
    assert page.locator("th.corner").first.inner_text() == "model.seed \\ prompt"
    assert page.locator("section.section").count() == 3
    assert page.locator(".cell").count() == 12

    # A filter by a parameter value keeps the runs with that value.
    page.goto(f"{ui_server.url}sweeps/{sweep_id}?v.model.seed=2&status=succeeded")
    assert page.locator(".cell").count() == 6
    page.goto(f"{ui_server.url}sweeps/{sweep_id}?rating=5")
    assert page.locator(".cell").count() == 0
    assert errors == []
    page.close()


def test_a_running_sweeps_cells_turn_succeeded_without_a_reload(
    ui_server: UiServer, browser: Any
) -> None:
    project = ui_server.project
    project.write("manifests/experiment/slow.yaml", "# @package _global_\n" + yaml.safe_dump(SLOW))
    batch = project.start_batch(
        "+experiment=slow",
        env={"COSMOS_SIMULATOR__PER_VIDEO_S": "2.5", "COSMOS_SIMULATOR__MODEL_LOAD_S": "0"},
    )
    try:
        deadline = time.monotonic() + 30
        while not [s for s in ui_server.api.list_sweeps() if s["name"] == "slow"]:
            assert batch.poll() is None, "the slow sweep ended before it was stored"
            assert time.monotonic() < deadline, "the slow sweep was not stored in 30 s"
            time.sleep(0.1)
        (sweep,) = [s for s in ui_server.api.list_sweeps() if s["name"] == "slow"]
        page, errors = open_page(browser, f"{ui_server.url}sweeps/{sweep['id']}")
        page.evaluate("window.stillTheSamePage = true")
        cells = page.locator(".cell")
        assert cells.count() == 2
        unfinished = page.locator(".cell:not(.st-succeeded)").count()
        assert unfinished >= 1, "both runs had finished before the page opened"
        page.locator(".cell.st-running").first.wait_for(timeout=20_000)
        screenshot(page, "sweep-running")
        wait_js(page, "document.querySelectorAll('.cell.st-succeeded').length === 2", timeout=30)
        assert page.evaluate("window.stillTheSamePage") is True  # no reload
        assert page.locator(".cell .st").all_inner_texts() == ["succeeded", "succeeded"]
        assert page.locator('[data-count="succeeded"]').first.inner_text() == "2"
        page.locator(".cell img").first.wait_for(timeout=10_000)
        screenshot(page, "sweep-finished")
        assert errors == []
        page.close()
    finally:
        batch.wait(timeout=60)
    assert batch.returncode == 0


def test_the_compare_view_plays_and_seeks_every_video_together(
    ui_server: UiServer, browser: Any
) -> None:
    sweep_id = the_demo_sweep(ui_server)
    page, errors = open_page(browser, f"{ui_server.url}sweeps/{sweep_id}")
    picks = page.locator(".cell .pick")
    picks.nth(0).check()
    picks.nth(1).check()
    assert page.locator("#picked").inner_text() == "2"
    page.click("#compare")
    page.wait_for_url("**/compare?runs=*")
    assert page.locator("article.run").count() == 2
    # Each run: its output, its input, the depth control the model computed.
    captions = page.locator("article.run").first.locator("figcaption").all_inner_texts()
    assert captions == ["output", "input", "computed depth"]
    wait_js(
        page,
        "[...document.querySelectorAll('video.sync')].every(v => v.readyState >= 2)",
        timeout=15,
    )

    def times() -> list[float]:
        return page.evaluate("[...document.querySelectorAll('video.sync')].map(v => v.currentTime)")

    page.click("#play")
    wait_js(page, "window.cosmosCompare.leader.currentTime > 0.3", timeout=10)
    playing = times()
    assert max(playing) - min(playing) < 0.1, playing
    page.click("#play")  # pause
    page.locator("#seek").evaluate("s => { s.value = 500; s.dispatchEvent(new Event('input')); }")
    wait_js(page, "[...document.querySelectorAll('video.sync')].every(v => !v.seeking)", timeout=10)
    duration = page.evaluate("window.cosmosCompare.leader.duration")
    sought = times()
    assert max(sought) - min(sought) < 0.1, sought
    assert abs(sought[0] - duration / 2) < 0.1
    # One frame forward moves every video by one frame.
    page.click("#fwd")
    wait_js(page, "[...document.querySelectorAll('video.sync')].every(v => !v.seeking)", timeout=10)
    stepped = times()
    assert max(stepped) - min(stepped) < 0.1, stepped
    assert 0.02 < stepped[0] - sought[0] < 0.08  # 1/24 s
    # The wipe shows A over B, cut where the slider is.
    page.locator("#wipe-at").evaluate("s => { s.value = 30; s.dispatchEvent(new Event('input')); }")
    clip = page.locator(".wipe-video.wipe-top").evaluate("v => v.style.clipPath")
    assert clip == "inset(0px 70% 0px 0px)"
    screenshot(page, "compare")
    assert errors == []
    page.close()
