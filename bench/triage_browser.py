"""What a reviewer feels: key press -> next sample on screen, in Debian's chromium, with several
reviewers deciding on the same queue at once.

Starts the real app (`amend app`) on a copy of a sample project, opens one browser per reviewer
(each its own chromium, own name), and in each: presses N a few times (moving without writing: the
baseline in the same run), then decides with K / M / X as fast as the page allows. All reviewers
start at the top of the same queue, so they collide on the same samples: a decision on a sample
someone else decided first is refused (the page shows the conflict; the reviewer presses G and goes
on). Prints per-reviewer and overall p50 / p95 latency from key press to the next sample's id on
screen, the conflicts shown, and checks that every acknowledged decision (the page moved on) is in
the log and nothing else is.

    python bench/triage_browser.py [--reviewers 3] [--decisions 25] [--moves 10] [--project cifar10n-sample]

Needs Debian's chromium (/usr/bin/chromium) and the Playwright driver (scripts/bootstrap.sh --test).
bench/README.md "Triage in the browser" records a run.
"""

from __future__ import annotations

import argparse
import os
import re
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
KEYS = ("k", "m", "x")  # keep, ambiguous, exclude: decisions that never need a class


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_app(project: Path, log: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    handle = log.open("w")
    process = subprocess.Popen([sys.executable, "-m", "core.cli", "app", str(project), "--port", str(port)],
                               cwd=REPO, stdout=handle, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + "/_stcore/health", timeout=2)
            return process, url
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(log.read_text()[-3000:])
            time.sleep(0.5)
    process.kill()
    raise RuntimeError("the app did not answer within 120 s")


class Reviewer(threading.Thread):
    """One person at one browser: moves, then decides, timing each key press to the next sample."""

    def __init__(self, name: str, url: str, moves: int, decisions: int, start: threading.Barrier) -> None:
        super().__init__(name=name)
        self.url, self.moves, self.decisions, self.start_together = url, moves, decisions, start
        self.move_ms: list[float] = []
        self.decide_ms: list[float] = []
        self.acknowledged: list[str] = []
        self.conflicts = 0
        self.error: str | None = None

    def run(self) -> None:
        from playwright.sync_api import sync_playwright

        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
                page = browser.new_page(viewport={"width": 1440, "height": 900})
                try:
                    self._open(page)
                    self.start_together.wait(timeout=600)
                    self._session(page)
                except Exception:
                    if os.environ.get("AMEND_BENCH_SHOTS"):  # what the page showed when it got stuck
                        page.screenshot(path=str(Path(os.environ["AMEND_BENCH_SHOTS"]) / f"{self.name}-stuck.png"))
                    raise
                browser.close()
        except Exception as exc:  # reported in the summary, the other reviewers go on
            self.error = f"{type(exc).__name__} after {len(self.decide_ms)} decisions: {str(exc)[:300]}"
            try:
                self.start_together.abort()
            except threading.BrokenBarrierError:
                pass

    def _open(self, page) -> None:
        page.goto(self.url)
        page.get_by_role("textbox", name="Your name").first.wait_for(timeout=120_000)
        box = page.get_by_role("textbox", name="Your name").first
        box.fill(self.name)
        box.press("Enter")
        page.get_by_text("Change name").wait_for(timeout=60_000)
        page.get_by_role("link", name="Triage").click()
        page.get_by_role("button", name="Keep label").wait_for(timeout=120_000)
        page.wait_for_timeout(2000)
        page.get_by_role("heading", name="Triage").first.click()

    @staticmethod
    def _shown(page) -> str:
        return page.locator(".stMain h3").first.inner_text().strip()

    def _press_and_wait(self, page, key: str) -> tuple[float, str]:
        """Press ``key``; return (ms until the shown sample changed or a conflict showed, outcome)."""
        before = self._shown(page)
        started = time.perf_counter()
        page.keyboard.press(key)
        page.wait_for_function(
            "(before) => { const h = document.querySelector('.stMain h3');"
            " if (document.body.innerText.includes('Not saved: someone decided first')) return true;"
            " return h && h.innerText.trim() !== before; }", arg=before, timeout=60_000, polling=10)
        elapsed = (time.perf_counter() - started) * 1000
        text = page.inner_text(".stMain")
        if "Not saved: someone decided first" in text:
            return elapsed, "conflict"
        # The page's acknowledgement names the event it wrote: "Event 12: keep, label 'cat' on 36196."
        found = re.search(r"Event (\d+): .*? on (\S+)\.", text)
        return elapsed, (int(found.group(1)), found.group(2)) if found else (None, before)

    def _session(self, page) -> None:
        done = 0
        while done < self.decisions:
            key = KEYS[done % len(KEYS)]
            elapsed, outcome = self._press_and_wait(page, key)
            if outcome == "conflict":
                self.conflicts += 1
                page.get_by_role("button", name="Review again").click()
                page.wait_for_timeout(300)
                page.get_by_role("heading", name="Triage").first.click()
                page.keyboard.press("s")  # someone else has it: skip to the next
                page.wait_for_timeout(500)
                continue
            self.decide_ms.append(elapsed)
            self.acknowledged.append(outcome)
            done += 1
        # The baseline: moving without writing, after the decisions (moving first would spread the
        # reviewers over the queue; the others' decisions also shorten it under a reviewer's feet).
        page.get_by_role("heading", name="Triage").first.click()
        for _ in range(self.moves):
            elapsed, _ = self._press_and_wait(page, "n")
            self.move_ms.append(elapsed)


def _pct(values: list[float], q: float) -> str:
    return f"{np.percentile(values, q):.0f}" if values else "-"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reviewers", type=int, default=3)
    parser.add_argument("--decisions", type=int, default=25, help="decisions per reviewer")
    parser.add_argument("--moves", type=int, default=10, help="N presses per reviewer first (the baseline)")
    parser.add_argument("--project", default="cifar10n-sample", choices=["cifar10n-sample", "news20-sample"])
    parser.add_argument("--samples-dir", type=Path, default=None,
                        help="built sample projects to copy (default: build them from sample_data/ first)")
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        print(f"needs Debian's chromium at {CHROMIUM}", file=sys.stderr)
        return 1
    from core.demo import prepare_sample_projects
    from core.review import audit
    from core.store.project import Project

    work = Path(tempfile.mkdtemp(prefix="amend-triage-browser-"))
    try:
        source = args.samples_dir or work / "built"
        if args.samples_dir is None:
            prepare_sample_projects(source)
        project = Path(shutil.copytree(source / args.project, work / args.project))
        process, url = _start_app(project, work / "app.log")
        try:
            barrier = threading.Barrier(args.reviewers)
            reviewers = [Reviewer(f"reviewer{i + 1}", url, args.moves, args.decisions, barrier)
                         for i in range(args.reviewers)]
            for r in reviewers:
                r.start()
            for r in reviewers:
                r.join()
        finally:
            process.terminate()
            process.wait(timeout=30)
        events = audit.read_events(Project.open(project), kinds=["decision"])
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"project {args.project}; {args.reviewers} reviewers in their own chromium at 1440x900, all starting "
          "at the top of the same queue")
    print("| reviewer | N (move, no write) p50 / p95 ms | decision -> next sample p50 / p95 ms | decided | conflicts shown |")
    print("|---|---|---|---|---|")
    for r in reviewers:
        if r.error:
            print(f"| {r.name} | failed: {r.error} | | | |")
            continue
        print(f"| {r.name} | {_pct(r.move_ms, 50)} / {_pct(r.move_ms, 95)} | {_pct(r.decide_ms, 50)} / "
              f"{_pct(r.decide_ms, 95)} | {len(r.decide_ms)} | {r.conflicts} |")
    moves = [m for r in reviewers for m in r.move_ms]
    decided = [d for r in reviewers for d in r.decide_ms]
    print(f"| all | {_pct(moves, 50)} / {_pct(moves, 95)} | {_pct(decided, 50)} / {_pct(decided, 95)} | "
          f"{len(decided)} | {sum(r.conflicts for r in reviewers)} |")
    # Acknowledged = the page said "Event N ... on ID" after the key press (what the reviewer saw).
    acknowledged = sorted((r.name, event, sample) for r in reviewers for event, sample in r.acknowledged
                          if event is not None)
    unconfirmed = sum(1 for r in reviewers for event, _ in r.acknowledged if event is None)
    logged = sorted((e.actor, e.event_id, e.sample_id) for e in events)
    lost = sorted(set(acknowledged) - set(logged))
    unacknowledged = sorted(set(logged) - set(acknowledged))
    print(f"acknowledged decisions: {len(acknowledged)}; in the log: {len(logged)}; acknowledged but not in the log: "
          f"{len(lost)}; in the log but never acknowledged: {len(unacknowledged)}")
    samples = [s for _, _, s in logged]
    blind = [e for e in events if e.payload.get("previous_event") is not None
             and e.payload.get("seen_event") != e.payload.get("previous_event")]
    print(f"moves on without an acknowledgement on screen (the next key came first): {unconfirmed}")
    for who, event, sample in lost:
        print(f"  acknowledged, not in the log: {who}, event {event} on {sample}")
    print(f"samples decided twice: {len(samples) - len(set(samples))}; of those second decisions, written without "
          f"having seen the first: {len(blind)} (must be 0: a stale one is refused and shown as a conflict)")
    return 0 if not lost and not blind and not any(r.error for r in reviewers) else 1


if __name__ == "__main__":
    sys.exit(main())
