"""Sweep reports without a browser: what cosmos-batch and `cosmos report` write.

Real CLIs (in-process), a real SQLite database, real simulated-model
outputs and real PyAV thumbnails. The HTML is read with the standard
library's parser (tests/test_report_browser.py opens it in Chromium).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import yaml
from conftest import Project, copy_project
from test_demo_sweep import RUN_FILES

VOID = {"meta", "img", "br", "link", "input", "hr", "source"}


class Node:
    """An element of a parsed page."""

    def __init__(self, tag: str, attrs: dict[str, str | None], parent: Node | None) -> None:
        self.tag = tag
        self.attrs = attrs
        self.parent = parent
        self.children: list[Node] = []
        self.content: list[str | Node] = []

    def text(self) -> str:
        return "".join(
            part if isinstance(part, str) else part.text() for part in self.content
        ).strip()

    def iter(self, tag: str | None = None, **attrs: str):
        """Descendants with this tag whose attributes contain these values."""
        for child in self.children:
            if (tag is None or child.tag == tag) and all(
                value in (child.attrs.get(key.rstrip("_")) or "").split()
                for key, value in attrs.items()
            ):
                yield child
            yield from child.iter(tag, **attrs)


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {}, None)
        self.current = self.root

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, dict(attrs), self.current)
        self.current.children.append(node)
        self.current.content.append(node)
        if tag not in VOID:
            self.current = node

    def handle_endtag(self, tag: str) -> None:
        node = self.current
        while node is not self.root and node.tag != tag:
            node = node.parent
        if node is not self.root:
            self.current = node.parent

    def handle_data(self, data: str) -> None:
        self.current.content.append(data)


def parse(path: Path) -> Node:
    builder = _TreeBuilder()
    builder.feed(path.read_text(encoding="utf-8"))
    return builder.root


def cells(page: Node) -> dict[str, Node]:
    """The figure of each run, by run id."""
    found = {fig.attrs["data-run-id"]: fig for fig in page.iter("figure", class_="run")}
    assert len(found) == len(list(page.iter("figure", class_="run"))), "a run shown twice"
    return found


def params(figure: Node) -> dict[str, str]:
    dl = next(figure.iter("dl", class_="params"))
    keys = [dt.text() for dt in dl.iter("dt")]
    values = [dd.text() for dd in dl.iter("dd")]
    return dict(zip(keys, values, strict=True))


def grid_of(table: Node) -> tuple[list[str], list[str], dict[tuple[str, str], list[Node]]]:
    """Column labels, row labels and the figures at each (row, column) of a table."""
    cols = [th.text() for th in table.iter("th", class_="col-label")]
    rows, slots = [], {}
    for tr in next(table.iter("tbody")).iter("tr"):
        label = next(tr.iter("th", class_="row-label")).text()
        rows.append(label)
        for col, td in zip(cols, tr.iter("td"), strict=True):
            slots[(label, col)] = list(td.iter("figure"))
    return cols, rows, slots


def report_line(stdout: str) -> Path:
    """The path that cosmos-batch printed as `report: PATH` (it must be printed once)."""
    lines = [line for line in stdout.splitlines() if line.startswith("report: ")]
    assert len(lines) == 1, stdout
    return Path(lines[0].removeprefix("report: "))


def sweep_runs(project: Project, sweep_id: str) -> dict[str, str]:
    """Run id -> status of every run of a sweep, from `cosmos show`."""
    shown = project.cosmos_json("show", sweep_id)
    return {run["id"]: run["status"] for run in shown["runs"]}


def local_links(page: Node) -> list[str]:
    links = [a.attrs["href"] for a in page.iter("a") if a.attrs.get("href")]
    links += [img.attrs["src"] for img in page.iter("img")]
    return links


@pytest.fixture(scope="module")
def demo(
    demo_template: Project, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Project, subprocess.CompletedProcess]:
    """A copy of the demo and what its `cosmos-batch +experiment=demo` printed."""
    proj = copy_project(demo_template, tmp_path_factory.mktemp("report") / "proj")
    assert proj.first_run is not None
    return proj, proj.first_run


@pytest.fixture(scope="module")
def demo_sweep(demo: tuple[Project, subprocess.CompletedProcess]) -> str:
    project, _ = demo
    (sweep,) = project.cosmos_json("list", "sweeps")
    return sweep["id"]


# ---------------------------------------------------------------- the demo's report


def test_the_demo_ends_by_printing_its_report(demo, demo_sweep: str) -> None:
    project, done = demo
    assert done.stdout.splitlines()[-1].startswith("report: ")
    path = report_line(done.stdout)
    assert path == project.outputs / "sweeps" / demo_sweep / "report.html"
    assert path.is_file()


def test_the_demo_report_is_a_3x2_grid_per_prompt_with_one_cell_per_run(
    demo, demo_sweep: str
) -> None:
    project, done = demo
    page = parse(report_line(done.stdout))
    runs = sweep_runs(project, demo_sweep)
    figures = cells(page)
    assert set(figures) == set(runs) and len(figures) == 12
    sections = list(page.iter("section", class_="section"))
    assert [next(s.iter("h2")).text() for s in sections] == ["prompt = street", "prompt = forest"]
    for section, prompt in zip(sections, ("street", "forest"), strict=True):
        corner = next(section.iter("th", class_="corner")).text()
        assert corner == "model.weights.depth \\ model.seed"
        cols, rows, slots = grid_of(next(section.iter("table")))
        assert cols == ["1", "2"] and rows == ["0.3", "0.5", "0.8"]
        for (depth, seed), figs in slots.items():
            assert len(figs) == 1
            assert params(figs[0]) == {
                "prompt": prompt,
                "model.weights.depth": depth,
                "model.seed": seed,
            }
    for run_id, figure in figures.items():
        assert figure.attrs["data-status"] == runs[run_id] == "succeeded"
        assert "succeeded" in next(figure.iter(class_="badge")).text()


def test_cells_have_lazy_thumbnails_that_play_or_link_to_the_video(demo) -> None:
    _, done = demo
    path = report_line(done.stdout)
    page = parse(path)
    thumbs = path.parent / "thumbs"
    for run_id, figure in cells(page).items():
        link = next(figure.iter("a", class_="play"))
        assert link.attrs["href"] == f"../../runs/{run_id}/output.mp4"
        (img,) = link.iter("img")
        assert img.attrs["loading"] == "lazy"
        assert img.attrs["src"].startswith("thumbs/") and run_id in img.attrs["src"]
        assert (path.parent / img.attrs["src"]).read_bytes()[:2] == b"\xff\xd8"
    assert len(list(thumbs.iterdir())) == 12
    html = path.read_text(encoding="utf-8")
    assert "data:" not in html
    assert "<video" not in html  # a video element is made only when a thumbnail is clicked


def test_the_header_gives_manifest_provenance_overrides_and_counts(demo, demo_sweep) -> None:
    project, done = demo
    path = report_line(done.stdout)
    page = parse(path)
    header = next(page.iter("header"))
    assert demo_sweep in next(header.iter("h1")).text()
    assert "Depth-weight and seed sweep" in next(header.iter("p", class_="description")).text()
    (badge,) = header.iter("span", class_="badge")
    assert badge.attrs["data-status"] == "succeeded" and badge.attrs["data-count"] == "12"
    provenance = json.loads((path.parent / "provenance.json").read_text())
    text = header.text()
    assert provenance["package"]["version"] in text
    assert provenance["model"]["adapter"] in text
    # A test project is not a git repository (test_the_header_names_the_manifests_commit).
    assert provenance["git"]["commit"] is None and "not in a git repository" in text
    assert "+experiment=demo" in text
    created = project.cosmos_json("show", demo_sweep)["created_at"][:19]
    assert created in text


def test_links_are_relative_and_work_in_a_copied_output_tree(demo, tmp_path: Path) -> None:
    project, done = demo
    path = report_line(done.stdout)
    links = local_links(parse(path))
    assert len(links) > 12 * 3
    copy = tmp_path / "elsewhere" / "outputs"
    shutil.copytree(project.outputs, copy)
    base = copy / path.relative_to(project.outputs)
    for link in links:
        parts = urlsplit(link)
        assert not parts.scheme and not parts.netloc and not link.startswith("/"), link
        target = (base.parent / unquote(parts.path)).resolve()
        assert target.exists(), link
        assert copy.resolve() in target.parents, link


def test_run_folders_stay_untouched_and_their_checksums_pass(demo) -> None:
    project, _ = demo
    for folder in (project.outputs / "runs").iterdir():
        files = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}
        assert files == RUN_FILES | {"output.txt"} or files == RUN_FILES, files
        check = subprocess.run(
            "sha256sum -c *.sha256", shell=True, cwd=folder, capture_output=True, text=True
        )
        assert check.returncode == 0, check.stdout + check.stderr


def test_cosmos_report_prints_the_path_and_json_by_prefix(demo, demo_sweep: str) -> None:
    project, done = demo
    path = report_line(done.stdout)
    plain = project.cosmos("report", demo_sweep[:7])
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout == f"{path}\n"
    data = project.cosmos_json("report", demo_sweep[:8])
    assert data["path"] == str(path) and data["sweep_id"] == demo_sweep
    assert data["axes"] == [
        {"name": "model.weights.depth", "values": [0.3, 0.5, 0.8]},
        {"name": "model.seed", "values": [1, 2]},
        {"name": "prompt", "values": ["street", "forest"]},
    ]
    assert data["layout"] == {
        "rows": "model.weights.depth",
        "cols": "model.seed",
        "sections": ["prompt"],
    }
    assert data["counts"]["succeeded"] == 12 and data["counts"]["total"] == 12
    assert data["counts"]["failed"] == 0
    # Unchanged videos keep their thumbnails.
    assert data["thumbnails"] == {"made": 0, "reused": 12, "failed": 0}


def test_rows_and_cols_pick_the_axes_and_the_rest_become_sections(demo, demo_sweep: str) -> None:
    project, _ = demo
    data = project.cosmos_json("report", demo_sweep, "--rows", "prompt", "--cols", "model.seed")
    assert data["layout"] == {
        "rows": "prompt",
        "cols": "model.seed",
        "sections": ["model.weights.depth"],
    }
    page = parse(Path(data["path"]))
    sections = list(page.iter("section", class_="section"))
    titles = [next(s.iter("h2")).text() for s in sections]
    assert titles == [f"model.weights.depth = {d}" for d in ("0.3", "0.5", "0.8")]
    cols, rows, slots = grid_of(next(sections[1].iter("table")))
    assert (cols, rows) == (["1", "2"], ["street", "forest"])
    assert params(slots[("forest", "2")][0])["model.weights.depth"] == "0.5"

    only_cols = project.cosmos_json("report", demo_sweep, "--cols", "prompt")
    assert only_cols["layout"]["rows"] == "model.weights.depth"
    assert only_cols["layout"]["sections"] == ["model.seed"]
    project.cosmos("report", demo_sweep)  # the default layout again, for the other tests


@pytest.mark.parametrize(
    "args",
    [("--rows", "seed"), ("--cols", "model.weights"), ("--rows", "prompt", "--cols", "nope")],
)
def test_an_unknown_axis_exits_2_names_the_axes_and_keeps_the_report(
    demo, demo_sweep: str, args: tuple[str, ...]
) -> None:
    project, done = demo
    path = report_line(done.stdout)
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    refused = project.cosmos("report", demo_sweep, *args)
    assert refused.returncode == 2
    assert "unknown axis" in refused.stderr
    assert "model.weights.depth, model.seed, prompt" in refused.stderr
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before


def test_rows_and_cols_on_the_same_axis_exit_2(demo, demo_sweep: str) -> None:
    project, _ = demo
    refused = project.cosmos("report", demo_sweep, "--rows", "prompt", "--cols", "prompt")
    assert refused.returncode == 2 and "same axis" in refused.stderr


@pytest.mark.parametrize("given", ["sw_ffffffffffff", "rs_0", "ps_0"])
def test_a_report_of_an_unknown_or_non_sweep_id_exits_2(demo, given: str) -> None:
    project, _ = demo
    refused = project.cosmos("report", given)
    assert refused.returncode == 2
    assert refused.stderr.strip()


# ---------------------------------------------------------------- other sweeps


def test_prompt_text_and_description_are_escaped(project: Project) -> None:
    project.write(
        "manifests/experiment/evil.yaml",
        "# @package _global_\n"
        + yaml.safe_dump(
            {
                "name": "evil",
                "description": "<b>bold</b> & <i>co</i>",
                "prompts": {
                    "x": {
                        "text": '<script>alert("x")</script> & <img src=y onerror=alert(1)>',
                        "inputs": {"video": "inputs/demo/street/color.mp4"},
                    }
                },
                "model": {"weights": {"edge": 0.5}},
                "sweep": {"grid": {"model.seed": [1, 2]}},
            }
        ),
    )
    done = project.batch("+experiment=evil")
    assert done.returncode == 0, done.stderr
    html = report_line(done.stdout).read_text(encoding="utf-8")
    assert html.count("<script") == 1  # the page's own
    assert "<b>" not in html and "<img src=y" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &lt;img src=y" in html
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; &lt;i&gt;co&lt;/i&gt;" in html


def test_failed_runs_are_marked_and_the_report_refreshes_when_they_succeed(
    project: Project,
) -> None:
    failing = project.batch("+experiment=demo", "simulator.fail_on_seed=2")
    assert failing.returncode == 1
    path = report_line(failing.stdout)
    figures = cells(parse(path))
    assert len(figures) == 12
    by_seed = {}
    for figure in figures.values():
        by_seed.setdefault(params(figure)["model.seed"], []).append(figure)
    for figure in by_seed["2"]:
        assert figure.attrs["data-status"] == "failed"
        assert "st-failed" in figure.attrs["class"].split()
        assert list(figure.iter("img")) == [] and list(figure.iter("a", class_="play")) == []
        assert next(figure.iter(class_="mark")).text() == "FAILED"
        error = project.cosmos_json("show", figure.attrs["data-run-id"])["error_message"]
        assert error and next(figure.iter("p", class_="error")).text() == error
        log = next(a for a in figure.iter("a") if a.text() == "log")
        assert (path.parent / log.attrs["href"]).is_file()
    assert all(f.attrs["data-status"] == "succeeded" for f in by_seed["1"])
    assert len(list((path.parent / "thumbs").iterdir())) == 6
    header = next(parse(path).iter("header"))
    counts = {b.attrs["data-status"]: b.attrs["data-count"] for b in header.iter(class_="badge")}
    assert counts == {"succeeded": "6", "failed": "6"}

    fixed = project.batch("+experiment=demo")
    assert fixed.returncode == 0, fixed.stderr
    assert report_line(fixed.stdout) == path
    figures = cells(parse(path))
    assert {f.attrs["data-status"] for f in figures.values()} == {"succeeded"}
    assert all(len(list(f.iter("img"))) == 1 for f in figures.values())
    assert len(list((path.parent / "thumbs").iterdir())) == 12


def test_an_edited_checksum_file_cannot_put_a_thumbnail_outside_the_sweep(
    project: Project,
) -> None:
    done = project.batch("+experiment=demo", "model.seed=1", "model.weights.depth=0.5")
    assert done.returncode == 0, done.stderr
    path = report_line(done.stdout)
    run_id = next(iter(cells(parse(path))))
    shutil.rmtree(path.parent / "thumbs")
    sums = project.outputs / "runs" / run_id / "outputs.sha256"
    lines = sums.read_text(encoding="utf-8").splitlines()
    edited = [
        "/../../../../escaped  output.mp4" if line.endswith("  output.mp4") else line
        for line in lines
    ]
    assert edited != lines
    sums.write_text("\n".join(edited) + "\n", encoding="utf-8")
    again = project.cosmos("report", path.parent.name)
    assert again.returncode == 0, again.stderr
    made = sorted(p.relative_to(project.root) for p in project.root.rglob("*.jpg"))
    thumbs = path.relative_to(project.root).parent / "thumbs"
    assert len(made) == 2 and all(p.parent == thumbs for p in made), made
    assert all(len(list(f.iter("img"))) == 1 for f in cells(parse(path)).values())


def test_a_multirun_report_lays_out_the_jobs_overrides(project: Project) -> None:
    done = project.batch(
        "-m", "+experiment=demo", "model.seed=1,2,3", "model.weights.depth=0.2,0.5"
    )
    assert done.returncode == 0, done.stderr
    path = report_line(done.stdout)
    (sweep,) = project.cosmos_json("list", "sweeps")
    data = project.cosmos_json("report", sweep["id"])
    assert data["path"] == str(path)
    assert data["layout"] == {
        "rows": "model.seed",
        "cols": "model.weights.depth",
        "sections": ["prompt"],
    }
    assert data["axes"][0]["values"] == [1, 2, 3] and data["axes"][1]["values"] == [0.2, 0.5]
    figures = cells(parse(path))
    assert set(figures) == set(sweep_runs(project, sweep["id"]))
    first = next(iter(figures.values()))
    assert params(first)["experiment"] == "demo"


def test_one_axis_is_a_single_row(project: Project) -> None:
    done = project.batch("+experiment=demo", "model.seed=1", "model.weights.depth=0.5")
    assert done.returncode == 0, done.stderr
    page = parse(report_line(done.stdout))
    (table,) = page.iter("table")
    rows = list(next(table.iter("tbody")).iter("tr"))
    assert len(rows) == 1 and list(rows[0].iter("th")) == []
    assert [th.text() for th in table.iter("th", class_="col-label")] == ["street", "forest"]
    assert len(cells(page)) == 2


def test_no_axis_is_a_list(project: Project) -> None:
    project.write(
        "manifests/experiment/single.yaml",
        "# @package _global_\n"
        + yaml.safe_dump(
            {
                "name": "single",
                "prompts": {
                    "only": {
                        "text": "one scene",
                        "inputs": {"video": "inputs/demo/street/color.mp4"},
                    }
                },
                "model": {"weights": {"edge": 0.5}},
            }
        ),
    )
    done = project.batch("+experiment=single")
    assert done.returncode == 0, done.stderr
    page = parse(report_line(done.stdout))
    assert list(page.iter("table")) == []
    (listing,) = page.iter("div", class_="list")
    assert len(list(listing.iter("figure"))) == 1
    assert "no parameter varies" in next(page.iter("dd", id_="layout")).text()


def test_a_report_that_cannot_be_written_warns_and_keeps_the_exit_code(
    project: Project,
) -> None:
    plan = project.batch("+experiment=demo", "dry_run=true")
    sweep_id = plan.stdout.split()[1]
    assert sweep_id.startswith("sw_")
    blocker = project.outputs / "sweeps" / sweep_id / "report.html"
    blocker.mkdir(parents=True)  # a folder where the report should go
    done = project.batch("+experiment=demo")
    assert done.returncode == 0, done.stderr
    assert "report: " not in done.stdout
    assert "12 succeeded" in done.stdout
    assert "was not written" in done.stderr and f"cosmos report {sweep_id}" in done.stderr
    assert blocker.is_dir()


def succeeded_rows(project: Project) -> list[tuple]:
    """The succeeded runs in the database (read directly: quick enough to poll)."""
    db = project.outputs / "cosmos.db"
    if not db.is_file():
        return []
    try:
        with sqlite3.connect(db, timeout=30) as conn:
            rows = conn.execute("SELECT id FROM runs WHERE status = 'succeeded'").fetchall()
        conn.close()
    except sqlite3.OperationalError:  # the tables are not made yet
        return []
    return rows


def test_an_interrupted_sweep_writes_its_report_with_the_cancelled_runs(
    project: Project,
) -> None:
    process = project.start_batch(
        "+experiment=demo", env={"COSMOS_SIMULATOR__PER_VIDEO_S": "2"}, capture=True
    )
    project.wait_for_ledger(1)
    deadline = time.monotonic() + 60
    while not succeeded_rows(project):
        assert time.monotonic() < deadline, "no run succeeded"
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    figures = cells(parse(report_line(stdout)))
    statuses = [figure.attrs["data-status"] for figure in figures.values()]
    assert len(statuses) == 12 and "cancelled" in statuses
    for figure in figures.values():
        if figure.attrs["data-status"] == "cancelled":
            assert next(figure.iter(class_="mark")).text() == "CANCELLED"
    # Ctrl-C quits soon: no thumbnail is made then; `cosmos report` makes them.
    succeeded = [f for f in figures.values() if f.attrs["data-status"] == "succeeded"]
    assert succeeded, "a run succeeded before Ctrl-C"
    for figure in succeeded:
        assert list(figure.iter("img")) == []
        assert next(figure.iter("span", class_="ph")).text().startswith("no thumbnail")
    path = report_line(stdout)
    assert not (path.parent / "thumbs").exists()
    again = project.cosmos("report", path.parent.name)
    assert again.returncode == 0, again.stderr
    refreshed = cells(parse(path))
    for figure in succeeded:
        (img,) = refreshed[figure.attrs["data-run-id"]].iter("img")
        assert (path.parent / img.attrs["src"]).is_file()


# ---------------------------------------------------------------- scale


def test_a_500_run_report_stays_small_and_loads_thumbnails_lazily(project: Project) -> None:
    # 250 prompts x 2 seeds: runs with the same parameters share a model invocation
    # (64 a time here, as Transfer1 would with max_batch_size 64), so the 500 runs take
    # 8 invocations (250 seeds x 2 prompts took 250).
    prompts = {}
    for number in range(250):
        scene = ("street", "forest")[number % 2]
        prompts[f"p{number:03d}"] = {
            "text": f"{scene} number {number}",
            "inputs": {
                "video": f"inputs/demo/{scene}/color.mp4",
                "controls": {"depth": f"inputs/demo/{scene}/depth.mp4"},
            },
        }
    manifest = {
        "name": "big",
        "prompts": prompts,
        "model": {"weights": {"depth": 0.5}},
        "sweep": {"grid": {"model.seed": [1, 2]}},
    }
    project.write(
        "manifests/experiment/big.yaml",
        "# @package _global_\n" + yaml.safe_dump(manifest, sort_keys=False),
    )
    # Four slots on the local target: four model processes at once make it quicker.
    done = project.batch(
        "+experiment=big", "target.gpus=[0,1,2,3]", "adapters.transfer1.max_batch_size=64"
    )
    assert done.returncode == 0, done.stderr
    path = report_line(done.stdout)
    html = path.read_text(encoding="utf-8")
    size = path.stat().st_size
    print(f"500-run report: {size} bytes")
    assert size < 1_000_000
    assert "data:" not in html and "base64" not in html
    page = parse(path)
    assert len(cells(page)) == 500
    images = list(page.iter("img"))
    assert len(images) == 500 and all(img.attrs.get("loading") == "lazy" for img in images)
    assert len(list((path.parent / "thumbs").iterdir())) == 500
    # The axis with more values is the rows: 250 rows (prompts) of 2 columns (seeds).
    cols, rows, _ = grid_of(next(page.iter("table")))
    assert (len(rows), cols) == (250, ["1", "2"])


# ---------------------------------------------------------------- header, thumbnails, rows


def git(project: Project, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
        cwd=project.root,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def test_the_header_names_the_manifests_commit(project: Project) -> None:
    git(project, "init", "-q")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "manifests")
    head = git(project, "rev-parse", "HEAD")
    done = project.batch("+experiment=demo", "model.seed=1", "model.weights.depth=0.5")
    assert done.returncode == 0, done.stderr
    header = next(parse(report_line(done.stdout)).iter("header")).text()
    assert head in header and "uncommitted" not in header


def test_a_multirun_header_lists_every_jobs_overrides_and_the_description(
    project: Project,
) -> None:
    done = project.batch("-m", "+experiment=demo", "model.seed=1,2", "model.weights.depth=0.5")
    assert done.returncode == 0, done.stderr
    header = next(parse(report_line(done.stdout)).iter("header"))
    lines = [code.text() for code in next(header.iter("dd", id_="overrides")).iter("code")]
    assert lines == [
        "+experiment=demo model.seed=1 model.weights.depth=0.5",
        "+experiment=demo model.seed=2 model.weights.depth=0.5",
    ]
    assert "Depth-weight and seed sweep" in header.text()


def test_a_new_output_video_gets_a_new_thumbnail(project: Project) -> None:
    done = project.batch("+experiment=demo", "model.seed=1", "model.weights.depth=0.5")
    assert done.returncode == 0, done.stderr
    path = report_line(done.stdout)
    run_id = next(iter(cells(parse(path))))
    run_dir = project.outputs / "runs" / run_id
    shutil.copyfile(
        project.root / "inputs" / "demo" / "forest" / "depth.mp4", run_dir / "output.mp4"
    )
    digest = subprocess.run(
        ["sha256sum", "output.mp4"], cwd=run_dir, capture_output=True, text=True, check=True
    ).stdout
    sums = run_dir / "outputs.sha256"
    lines = [
        digest.strip() if line.endswith("  output.mp4") else line
        for line in sums.read_text(encoding="utf-8").splitlines()
    ]
    sums.write_text("\n".join(lines) + "\n", encoding="utf-8")
    data = project.cosmos_json("report", path.parent.name)
    assert data["thumbnails"] == {"made": 1, "reused": 1, "failed": 0}
    assert len(list((path.parent / "thumbs").glob(f"{run_id}-*.jpg"))) == 1


def test_a_section_shows_only_the_rows_it_has(project: Project) -> None:
    project.write(
        "manifests/experiment/zipped.yaml",
        "# @package _global_\n"
        "defaults:\n  - /prompts: demo\n"
        "name: zipped\nvars:\n  style: soft\n"
        "sweep:\n  zip:\n    model.seed: [1, 2, 3]\n    model.weights.depth: [0.2, 0.5, 0.8]\n",
    )
    done = project.batch("+experiment=zipped")
    assert done.returncode == 0, done.stdout + done.stderr
    (sweep,) = project.cosmos_json("list", "sweeps")
    data = project.cosmos_json("report", sweep["id"], "--rows", "model.seed", "--cols", "prompt")
    assert data["layout"]["sections"] == ["model.weights.depth"]
    sections = list(parse(Path(data["path"])).iter("section", class_="section"))
    assert len(sections) == 3
    for section, seed in zip(sections, ("1", "2", "3"), strict=True):
        # Only the seed that goes with this depth: no row of empty cells.
        rows = list(next(section.iter("tbody")).iter("tr"))
        assert [next(row.iter("th", class_="row-label")).text() for row in rows] == [seed]
        assert list(section.iter("td", class_="empty")) == []
        assert len(list(section.iter("figure"))) == 2
