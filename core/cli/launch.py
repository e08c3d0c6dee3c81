"""`amend app` and `amend demo`: start the Streamlit app (the process becomes the server)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Sequence

from core.cli.output import output, tell
from core.errors import AmendError

# Streamlit routes a session that arrives on a deep link (/triage) before any session has run
# app.py through its legacy pages/ folder mode, running pages/triage.py without app.py's
# navigation and sidebar. app.py always uses st.navigation, so the launcher switches that legacy
# mode off before the server starts (Streamlit does the same itself once st.navigation has run).
#
# `kill -USR1 PID` makes the server write every thread's stack to its stderr: the way to see
# where a server that stopped answering is stuck, without stopping it. A stop request ends the
# process within pages/shutdown.py's grace period even when a client stalls.
_STREAMLIT_LAUNCHER = (
    "import faulthandler, os, signal, sys\n"
    "faulthandler.register(signal.SIGUSR1, all_threads=True)\n"
    "try:\n"
    "    from streamlit.runtime.pages_manager import PagesManager\n"
    "    PagesManager.uses_pages_directory = False\n"
    "except (ImportError, AttributeError):\n"
    "    pass\n"
    "sys.path.insert(0, os.environ['AMEND_APP_DIR'])\n"
    "from pages.hosts import guard_hosts\n"
    "guard_hosts()\n"
    "from pages.shutdown import stop_within_grace\n"
    "stop_within_grace()\n"
    "from streamlit.web.cli import main\n"
    "sys.argv = ['streamlit', *sys.argv[1:]]\n"
    "sys.exit(main())\n"
)


#: Names a browser may use for the app besides the address it is bound to (a page on any other
#: name is refused: DNS rebinding lets a web page point its own name at 127.0.0.1 and drive a
#: local app that has no login).
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
_WILDCARD_BINDS = ("0.0.0.0", "::", "")


def trusted_hosts(bind_host: str, extra: Sequence[str] = ()) -> list[str]:
    """The Host names the app answers: loopback names, the bound address and ``extra`` (e.g. a
    machine name for a LAN setup). A wildcard bind without ``extra`` answers any name ("*")."""
    if bind_host in _WILDCARD_BINDS and not extra:
        return ["*"]
    names = [*LOOPBACK_NAMES, *([] if bind_host in _WILDCARD_BINDS else [bind_host]), *extra]
    return list(dict.fromkeys(n.strip().lower().strip("[]") for n in names if n.strip()))


def _app_script() -> Path:
    script = Path(__file__).resolve().parents[2] / "app.py"
    if not script.is_file():
        raise AmendError(
            f"the app's entry point {script} is missing; install Amend from its source folder with `pip install -e .`."
        )
    return script


def start_app(projects: Sequence[Path], host: str, port: int, allow_hosts: Sequence[str] = ()) -> int:
    """Run Streamlit on app.py with the given projects (blocking: this process becomes the server)."""
    from core.store.project import Project

    for project in projects:
        Project.open(project)  # fail here, clearly, rather than inside the browser
    env = dict(os.environ, AMEND_PROJECTS=os.pathsep.join(str(Path(p).resolve()) for p in projects),
               AMEND_TRUSTED_HOSTS=",".join(trusted_hosts(host, allow_hosts)),
               AMEND_APP_DIR=str(_app_script().parent))  # where pages/hosts.py, the Host check, lives
    command = [
        sys.executable, "-c", _STREAMLIT_LAUNCHER, "run", str(_app_script()),
        "--server.address", host, "--server.port", str(port), "--server.headless", "true",
        "--browser.gatherUsageStats", "false",
        # A tool, not a dev server: no "Deploy" button or developer menu for the people reviewing.
        "--client.toolbarMode", "minimal",
        # Streamlit runs a full garbage collection after every rerun, before it tells the browser
        # the run is over; with this process's heaps that is ~150 ms on 2 cores, and the next key
        # press waits behind it (bench/README "Triage in the browser"). Python's own generational
        # collection still runs.
        "--runner.postScriptGC", "false",
    ]
    tell(f"Amend is starting at http://{host}:{port}  (Ctrl+C stops it)")
    if env["AMEND_TRUSTED_HOSTS"] == "*":
        tell("note: bound to every address with no --allow-host: any Host name is answered (no DNS-rebinding "
             "check); pass --allow-host NAME for the names your reviewers use.")
    # Become the server (no child process): stopping `amend app` stops Streamlit with it.
    os.execve(sys.executable, command, env)
    return 0  # not reached


def cmd_app(args: argparse.Namespace, progress) -> int:
    return start_app([Path(p) for p in args.project], args.host, args.port, args.allow_host)


def cmd_demo(args: argparse.Namespace, progress) -> int:
    from core.demo import prepare_sample_projects

    projects = prepare_sample_projects(Path(args.dir), progress=progress, log=tell)
    progress.close()
    if args.no_app:
        output(args, {"projects": [str(p) for p in projects]}, lambda r: "\n".join(r["projects"]))
        return 0
    return start_app(projects, args.host, args.port, args.allow_host)


def _add_server_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=8501)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                        help="another name browsers reach the app by (repeatable); requests for any name but "
                             "these, localhost and the bound address are refused")


def register(commands) -> None:
    """Add `app` and `demo` to the `amend` parser."""
    _add_server_arguments(commands.add("app", cmd_app, "start the Streamlit app on one or more projects",
                                       project="many", json=False))
    p = commands.add("demo", cmd_demo, "build the sample projects from sample_data/ and start the app on them", project=None)
    p.add_argument("--dir", default=".amend", help="where the sample projects live (default .amend)")
    _add_server_arguments(p)
    p.add_argument("--no-app", action="store_true", help="only prepare the projects")
