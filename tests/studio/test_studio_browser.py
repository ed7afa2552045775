"""The Studio in a real browser (headless Chromium driven by Playwright): navigation, filters,
sorting, charts drawn, saved views, a live run, injection attempts. Every page must end with no
dialog, no CSP violation, no console error and no request leaving 127.0.0.1 (the ``page``
fixture checks). Screenshots of each page go to $RUNLEDGER_STUDIO_SCREENSHOTS."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from studio_helpers import XSS_IMG, XSS_SCRIPT, RunningStudio, Watched

from ledger.studio.app import experiment_url, run_url

# Pixels of a series' line: opaque and coloured (the grid and axes are grey or translucent).
PAINTED = """(el) => {
  const c = el.querySelector('canvas');
  if (!c) return 0;
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let n = 0;
  for (let i = 0; i < d.length; i += 4) {
    const hi = Math.max(d[i], d[i + 1], d[i + 2]), lo = Math.min(d[i], d[i + 1], d[i + 2]);
    if (d[i + 3] > 128 && hi - lo > 60) n++;
  }
  return n;
}"""


def wait_until(page: Watched, expression: str, timeout: float = 15.0) -> None:
    """Poll a JavaScript expression until it is true (Playwright's wait_for_function evaluates
    strings with eval, which our CSP rightly refuses)."""
    deadline = time.monotonic() + timeout
    while not page.page.evaluate(f"() => Boolean({expression})"):
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout}s: {expression}")
        time.sleep(0.05)


def names_in_table(page: Watched) -> list[str]:
    return page.page.locator("#runs tr.run .run-link").all_inner_texts()


def shot(page: Watched, folder: Path, name: str) -> None:
    page.page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def test_navigation_from_experiments_to_a_run(page: Watched, screenshots: Path,
                                              studio_ledger: tuple[str, Any]) -> None:
    page.goto("/")
    assert page.page.locator("#experiments").is_visible()
    shot(page, screenshots, "01-experiments")
    page.page.locator("a.experiment-link", has_text="demo").click()
    page.page.wait_for_selector("#runs")
    assert len(names_in_table(page)) == 12
    shot(page, screenshots, "02-runs")
    page.page.locator("a.run-link", has_text="train-03").click()
    page.page.wait_for_selector("#run-title")
    assert "train-03" in page.page.locator("#run-title").inner_text()
    assert page.page.locator("#child-tree li").count() == 2
    page.page.wait_for_selector("#chart canvas")
    shot(page, screenshots, "03-run")


def test_every_filter_and_the_search(page: Watched) -> None:
    base = experiment_url("demo")
    page.goto(base)
    page.page.locator("input[name=status][value=Failed]").check()
    page.page.locator("#apply").click()
    page.page.wait_for_url("**status=Failed**")
    assert sorted(names_in_table(page)) == ["train-04", "train-09"]
    cases = {
        "tag=lr%3D0.1": ["train-00", "train-03", "train-06", "train-09"],
        "tag=best": ["train-00", "train-04", "train-08"],
        "prop=algo%3Dsgd&tag=best": ["train-00", "train-04", "train-08"],
        "metric=loss.max+%3E%3D+1.1": ["train-10", "train-11"],
        "metric=loss+%3C+0.06": ["train-00"],
        "q=sweep+1": ["train-01", "train-10", "train-11"],
        "q=TRAIN-05": ["train-05"],
    }
    for query, expected in cases.items():
        page.goto(f"{base}?{query}")
        assert sorted(names_in_table(page)) == expected, query
    # Typed into the form, the filter lands in the URL (bookmarkable).
    page.goto(base)
    page.page.locator("input[name=tag]").last.fill("lr=0.01")
    page.page.locator("input[name=metric]").last.fill("accuracy > 0.8")
    page.page.locator("#apply").click()
    page.page.wait_for_url("**tag=lr%3D0.01**")
    assert "metric=accuracy" in page.page.url
    assert sorted(names_in_table(page)) == ["train-01", "train-04", "train-07", "train-10"]


def test_sorting_by_clicking_headings_and_picked_columns(page: Watched,
                                                         screenshots: Path) -> None:
    page.goto(experiment_url("demo") + "?col=metric:loss.last&col=tag:lr&col=prop:algo")
    assert names_in_table(page)[0] == "train-11"  # newest first
    page.page.locator("a.sort[data-column=name]").click()
    page.page.wait_for_url("**sort=name**")
    assert names_in_table(page) == [f"train-{i:02d}" for i in range(12)]
    page.page.locator("a.sort[data-column=name]").click()
    page.page.wait_for_url("**sort=-name**")
    assert names_in_table(page) == [f"train-{i:02d}" for i in reversed(range(12))]
    page.page.locator("a.sort[data-column='metric:loss.last']").click()
    page.page.wait_for_url("**sort=-metric**")
    assert names_in_table(page)[0] == "train-11"  # the largest last loss
    headings = page.page.locator("#runs thead th").all_inner_texts()
    assert any("loss" in h for h in headings) and any("algo" in h for h in headings)
    shot(page, screenshots, "04-runs-sorted-columns")
    # Keyset pages: 5 a page, walking forward reaches every run once.
    page.goto(experiment_url("demo") + "?limit=5&sort=name")
    seen = names_in_table(page)
    while page.page.locator("#next-page").count():
        page.page.locator("#next-page").click()
        page.page.wait_for_selector("#runs")
        seen += names_in_table(page)
    assert seen == [f"train-{i:02d}" for i in range(12)]


def test_children_fold_under_their_parent(page: Watched,
                                          studio_ledger: tuple[str, Any]) -> None:
    page.goto(experiment_url("demo"))
    assert page.page.locator("tr.child").count() == 0
    page.page.locator("a.fold").click()
    page.page.wait_for_selector("tr.child")
    assert page.page.locator("tr.child .run-link").all_inner_texts() == ["fold-1", "fold-0"]
    assert "open=" in page.page.url


def test_charts_are_drawn_with_log_scale_smoothing_and_time(page: Watched,
                                                            screenshots: Path,
                                                            studio_ledger: tuple[str, Any]) -> None:
    page.goto(run_url(studio_ledger[1]["runs"][0]))
    chart = page.page.locator("#chart")
    page.page.wait_for_selector("#chart canvas")
    assert chart.get_attribute("data-points") == "20"
    assert chart.evaluate(PAINTED) > 200
    page.page.locator(".pick-metric[value=loss]").check()
    wait_until(page, "document.querySelector('#chart').dataset.points === '40'")
    page.page.locator("#log-scale").check()
    page.page.locator("#x-axis").select_option("time")
    page.page.locator("#smoothing").fill("0.8")
    page.page.wait_for_selector("#chart canvas")
    assert chart.evaluate(PAINTED) > 200
    assert page.page.locator(".u-legend").inner_text().count("loss") >= 1
    chart.screenshot(path=str(screenshots / "05-chart.png"))
    shot(page, screenshots, "06-run-log-time-smoothed")
    # The measure tells a drawn line from an empty plot: an axis with no series paints none.
    page.page.locator("#smoothing").fill("0")
    page.page.evaluate("() => { const b = document.querySelectorAll('.pick-metric');"
                       " b.forEach((x) => { x.checked = false; }); }")
    page.page.locator(".pick-metric[value=loss]").dispatch_event("change")
    wait_until(page, "!document.querySelector('#chart canvas')")
    assert chart.evaluate(PAINTED) == 0


def test_a_chart_of_100k_points(page: Watched, studio_ledger: tuple[str, Any]) -> None:
    page.goto(run_url(studio_ledger[1]["big"]))
    wait_until(page, "document.querySelector('#chart').dataset.points === '100000'")
    assert page.page.locator("#chart").evaluate(PAINTED) > 200


def test_compare_highlights_differences(page: Watched, screenshots: Path,
                                        studio_ledger: tuple[str, Any]) -> None:
    runs = studio_ledger[1]["runs"]
    page.goto(experiment_url("demo"))
    for run_id in (runs[0], runs[1], runs[2]):
        page.page.locator(f"tr[data-run='{run_id}'] input[type=checkbox]").check()
    page.page.locator("#compare").click()
    page.page.wait_for_selector("#compare-table")
    wait_until(page, "document.querySelector('#chart').dataset.points === '60'")
    differing = page.page.locator("#compare-table tr.differs th").all_inner_texts()
    assert "algo" in differing and "lr" in differing
    assert page.page.locator("#chart").evaluate(PAINTED) > 200
    shot(page, screenshots, "07-compare")


def test_a_saved_view_is_restored_from_its_url(page: Watched, screenshots: Path,
                                               studio: RunningStudio) -> None:
    page.goto(experiment_url("demo") + "?tag=best&sort=name&col=metric:loss.min")
    page.page.locator("#save-view input[name=name]").fill("best runs " + XSS_IMG)
    page.page.locator("#save-view button").click()
    page.page.wait_for_url("**view=**")
    view_url = page.page.locator("a.view-link.current").get_attribute("href")
    assert view_url is not None and view_url.startswith("/views/")
    other = Watched(page.context.browser, studio.url)
    try:
        other.goto(view_url)
        other.page.wait_for_selector("#runs")
        assert names_in_table(other) == ["train-00", "train-04", "train-08"]
        assert other.page.locator("input[name=tag]").first.input_value() == "best"
        assert other.page.locator("a.view-link.current").inner_text() == "best runs " + XSS_IMG
        shot(other, screenshots, "08-saved-view")
        other.assert_clean()
    finally:
        other.close()


def test_a_live_run_updates_its_page(page: Watched, studio_ledger: tuple[str, Any]) -> None:
    from ledger import Run, Workspace

    store, ids = studio_ledger
    page.goto(run_url(ids["running"]))
    assert page.page.locator("#run-status").inner_text() == "Running"
    page.page.locator(".pick-metric[value=loss]").check()
    wait_until(page, "document.querySelector('#chart').dataset.points === '40'")
    table = Watched(page.context.browser, page.base)
    table.goto(experiment_url("demo"))
    row = f"#runs tr[data-run='{ids['running']}']"
    assert table.page.locator(f"{row} .status").inner_text() == "Running"
    ticking = table.page.locator(f"{row} td.duration")
    first = ticking.inner_text()
    wait_until(table, f"document.querySelector(\"{row} td.duration\").textContent !== "
                      f"{first!r}")  # the duration of a running run ticks
    ws = Workspace(store=store)
    run = Run.get(ws, ids["running"])
    for step in range(20, 30):
        run.log("loss", 0.01, step=step)
    run.complete()
    wait_until(page, "document.querySelector('#run-status').textContent === 'Completed'")
    wait_until(page, "document.querySelector(\"#metric-summary tr[data-metric='loss'] "
                     ".m-count\").textContent === '30'")
    wait_until(page, "document.querySelector('#chart').dataset.points === '50'")
    wait_until(table, f"document.querySelector(\"{row} .status\").textContent === 'Completed'")
    table.assert_clean()
    table.close()


def test_injection_is_shown_as_text(page: Watched, screenshots: Path,
                                    studio_ledger: tuple[str, Any]) -> None:
    ids = studio_ledger[1]
    hostile = ids["hostile"]
    page.goto("/")
    assert page.page.get_by_text("hostile", exact=True).count() == 1
    columns = [("col", "tag:" + XSS_IMG), ("col", "tag:note"), ("col", "prop:p"),
               ("col", f"metric:{XSS_SCRIPT}.last"), ("tag", "note=" + XSS_IMG)]
    page.goto(experiment_url(hostile) + "?" + urlencode(columns))
    assert names_in_table(page) == [XSS_IMG + XSS_SCRIPT]
    body = page.page.locator("#runs").inner_text()
    assert XSS_SCRIPT in body and XSS_SCRIPT + XSS_IMG in body
    shot(page, screenshots, "09-injection-runs")
    page.goto(run_url(ids["evil"]))
    page.page.wait_for_selector("#chart canvas")
    assert XSS_IMG + XSS_SCRIPT in page.page.locator("#run-title").inner_text()
    assert page.page.locator("#tags").inner_text().count(XSS_IMG) == 2
    assert XSS_SCRIPT in page.page.locator("#metric-summary").inner_text()
    assert XSS_SCRIPT in page.page.locator(".u-legend").inner_text()
    shot(page, screenshots, "10-injection-run")
    page.goto(f"/compare?run={quote(ids['evil'])}&run={quote(ids['big'])}")
    page.page.wait_for_selector("#compare-table")
    for scope in (page.page,):
        assert scope.locator("img").count() == 0
        assert scope.locator("script:not([src]):not([type='application/json'])").count() == 0


def test_the_heaviest_page_loads_under_200_kb(page: Watched,
                                              studio_ledger: tuple[str, Any]) -> None:
    sizes: list[int] = []
    page.page.on("response", lambda response: sizes.append(len(response.body())))
    page.goto(run_url(studio_ledger[1]["runs"][0]))
    page.page.wait_for_selector("#chart canvas")
    page.page.wait_for_load_state("networkidle")
    assert 50_000 < sum(sizes) < 200_000
