"""The fleet page in a real headless Chromium: what a person sees, what they can click,
that whatever a node reports stays text, and that the page follows new reports.

Screenshots land in the test's own directory (tmp_path).
"""

from __future__ import annotations

import json
import subprocess
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from fleet_support import (
    CLASSES,
    RECONCILER,
    FleetNode,
    bare,
    cli,
    config_origin,
    fleet_xml,
    wait_published,
)
from gitutil_repo import free_port, git, wait_for_port
from selenium.common.exceptions import NoAlertPresentException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from session_build import built_once

if TYPE_CHECKING:
    # selenium's driver takes 0.3 CPU-s to import: only the worker that runs these tests
    # pays it, not every worker as it collects the suite.
    from selenium.webdriver.remote.webdriver import WebDriver

PAYLOAD = "<script>document.body.setAttribute('data-pwned','1')</script>"
HOSTILE = "<script>document.title='pwned'</script><img/src=x/onerror=alert(1)>"
FILES: dict[str, str | bytes | None] = {
    "fleet.xml": fleet_xml(web=2, cache=1, node_policies={"cache-01.shop.c1.t":
                                                            'max-severity="none"'}),
    **CLASSES,
    "templates/web/web.conf.j2": "server_name {{ node.name }}; # " + PAYLOAD + "\n",
}


@dataclass
class Page:
    url: str
    browser: WebDriver
    reports: Path
    nodes: dict[str, FleetNode]  # the page's own nodes, for a test that runs them again

    def open(self, path: str) -> None:
        self.browser.get(self.url + path)

    def text(self, css: str = "body") -> str:
        return str(self.browser.find_element(By.CSS_SELECTOR, css).text)


def _hostile_report(reports: Path, template: bytes) -> None:
    """A report under a ref whose node name is markup (only a repository without the
    hook could hold it; the page must stay safe anyway)."""
    data = json.loads(template)
    data["node"] = HOSTILE
    data["problems"] = [HOSTILE]
    done = subprocess.run(["git", "-C", str(reports), "hash-object", "-w", "--stdin"],
                          input=json.dumps(data).encode(), capture_output=True, check=True)
    tree = subprocess.run(["git", "-C", str(reports), "mktree"], capture_output=True,
                          input=f"100644 blob {done.stdout.decode().strip()}\treport.json\n"
                          .encode(), check=True).stdout.decode().strip()
    commit = git(reports, "commit-tree", tree, "-m", "hostile")
    git(reports, "update-ref", f"refs/reports/{HOSTILE}", commit)


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--window-size=1280,1000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        yield driver
    finally:
        driver.quit()


SETTINGS: dict[str, dict[str, Any]] = {
    "web-01.shop.c1.t": {}, "web-02.shop.c1.t": {}, "cache-01.shop.c1.t": {},
    "web-01.shop.c2.t": {"mode": "audit"}, "cache-01.shop.c2.t": {}}
FAILED = "web-02.shop.c1.t"


def _run_and_publish(base: Path, names: tuple[str, ...] = tuple(SETTINGS)
                     ) -> dict[str, FleetNode]:
    """The nodes `names` under `base` ran (web-02.shop.c1.t fails) and published to
    `base/reports.git`; with web-01.shop.c1.t, a hostile report there too."""
    origin = config_origin(base, FILES)
    reports = bare(base / "reports.git")
    url = f"file://{reports}"
    nodes = {name: FleetNode(base / "nodes", name, origin.url, url, **SETTINGS[name])
             for name in names}
    if FAILED in nodes:
        nodes[FAILED].root.mkdir(parents=True)
        nodes[FAILED].root.joinpath("etc").write_text("not a directory\n")
    for node in nodes.values():
        node.run()
    wait_published(nodes.values())
    if "web-01.shop.c1.t" in nodes:
        _hostile_report(reports, git(reports, "show",
                                     "refs/reports/web-01.shop.c1.t:report.json").encode())
    return nodes


@contextmanager
def served(reports: Path, browser: WebDriver, nodes: dict[str, FleetNode]) -> Iterator[Page]:
    """`fleet serve` on `reports`."""
    port = free_port()
    server = subprocess.Popen([RECONCILER, "fleet", "serve", "--reports", str(reports),
                               "--listen", f"127.0.0.1:{port}", "--refresh", "0.2"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for_port(port, timeout=60)
        yield Page(f"http://127.0.0.1:{port}", browser, reports, nodes)
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory, browser: WebDriver) -> Iterator[Page]:
    """The served fleet for the tests that only look at it (its reports built once in
    the session; no node of it runs again)."""
    base, _ = built_once(tmp_path_factory, "fleet-web",
                         lambda base: {name: "" for name in _run_and_publish(base)})
    with served(base / "reports.git", browser, {}) as shown:
        yield shown


@pytest.fixture
def own_page(tmp_path: Path, browser: WebDriver) -> Iterator[Page]:
    """A served fleet of the test's own, for a test that makes a node report again: a
    failed node and the one that is to fail."""
    nodes = _run_and_publish(tmp_path, (FAILED, "cache-01.shop.c2.t"))
    with served(tmp_path / "reports.git", browser, nodes) as shown:
        yield shown


def test_the_summary_shows_states_spread_and_the_grid(page: Page, tmp_path: Path) -> None:
    page.open("/")
    badges = [b.text for b in page.browser.find_elements(By.CSS_SELECTOR, ".states a.badge")]
    assert badges == ["1 failed", "1 held", "1 pending", "3 changed"]
    spread = page.text("section.spread")
    assert "fleet" in spread and "on 6 of 6 nodes" in spread
    cell = page.browser.find_element(By.CSS_SELECTOR, "td.cell.state-held")
    assert cell.text == "1 held\nof 1 nodes"
    assert page.browser.find_element(By.CSS_SELECTOR, "td.cell.state-failed").text == \
        "1 failed\nof 2 nodes"
    page.browser.save_screenshot(str(tmp_path / "fleet-summary.png"))
    assert (tmp_path / "fleet-summary.png").stat().st_size > 10_000


def test_a_grid_cell_leads_to_the_nodes_it_counts(page: Page) -> None:
    page.open("/")
    page.browser.find_element(By.CSS_SELECTOR, "td.cell.state-failed a").click()
    assert page.browser.current_url.endswith("/nodes?cluster=c1&class=web")
    rows = page.browser.find_elements(By.CSS_SELECTOR, "table.list tbody tr")
    assert [r.text.split()[:2] for r in rows] == [["web-01.shop.c1.t", "changed"],
                                                  ["web-02.shop.c1.t", "failed"]]


def test_the_node_page_shows_held_changes_diffs_and_history(page: Page, tmp_path: Path) -> None:
    page.open("/nodes?state=held")
    page.browser.find_element(By.LINK_TEXT, "cache-01.shop.c1.t").click()
    held = page.browser.find_elements(By.CSS_SELECTOR, "table.held tbody tr td")
    assert [c.text for c in held][:3] == ["file:/etc/cache.conf", "reload",
                                          "create (and directories /etc)"]
    assert "above the ceiling none" in held[3].text
    assert "+size = 64m" in page.text("pre.diff")
    facts = page.text("dl.facts")
    assert "config commit" in facts and "fleet" in facts
    commit = json.loads(git(page.reports, "show", "refs/reports/cache-01.shop.c1.t:report.json")
                        )["config"]["commit"]
    history = page.browser.find_elements(By.CSS_SELECTOR, "table.list tbody tr")
    assert history[-1].text.split()[3:5] == ["held", commit[:12]]
    page.browser.save_screenshot(str(tmp_path / "fleet-node.png"))


def test_markup_in_a_diff_or_a_node_name_is_shown_as_text(page: Page) -> None:
    page.open("/node/web-01.shop.c1.t")
    assert PAYLOAD in page.text("pre.diff")
    assert page.browser.find_element(By.TAG_NAME, "body").get_attribute("data-pwned") is None
    page.open("/nodes")
    link = page.browser.find_element(By.PARTIAL_LINK_TEXT, "<script>")
    assert link.text == HOSTILE
    link.click()
    assert page.text("h1").startswith(HOSTILE)
    assert HOSTILE in page.text("dl.facts") or HOSTILE in page.text("ul.problems")
    assert page.browser.title != "pwned"
    with pytest.raises(NoAlertPresentException):
        page.browser.switch_to.alert.accept()


def test_the_page_follows_new_reports_by_itself(own_page: Page) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    page = own_page
    page.open("/")
    assert "1 failed" in page.text(".states")
    broken = page.nodes["cache-01.shop.c2.t"]
    broken.root.joinpath("etc/cache.conf").unlink()
    broken.root.joinpath("etc/cache.conf").mkdir()  # a directory where the file should be
    broken.run()
    wait_published([broken])
    # The page reloads itself; an element read during the reload is stale: look again.
    WebDriverWait(page.browser, 60, poll_frequency=0.2,
                  ignored_exceptions=(StaleElementReferenceException,)).until(
        lambda browser: "2 failed" in browser.find_element(By.CSS_SELECTOR, ".states").text)


def test_the_page_uses_only_its_own_server(page: Page) -> None:
    page.open("/node/web-01.shop.c1.t")
    loaded = page.browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)")
    assert sorted(loaded) == [f"{page.url}/static/fleet.css", f"{page.url}/static/refresh.js"] \
        or all(name.startswith(page.url) for name in loaded)
    with urllib.request.urlopen(page.url + "/") as response:
        policy = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "script-src 'self'" in policy


def test_serve_binds_to_loopback_unless_told_otherwise(tmp_path: Path) -> None:
    reports = bare(tmp_path / "reports.git")
    helped = cli("fleet", "serve", "--help")
    assert helped.returncode == 0 and "[default: 127.0.0.1:8080]" in helped.stdout
    # An address of TEST-NET-1, never this machine's: the warning comes, the bind fails.
    done = subprocess.run([RECONCILER, "fleet", "serve", "--reports", str(reports),
                           "--listen", f"192.0.2.1:{free_port()}"], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode != 0
    assert done.stderr.startswith("warning: serving on 192.0.2.1: anyone who reaches it "
                                  "reads every node's reports\n")
