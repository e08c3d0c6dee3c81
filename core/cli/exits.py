"""The one mapping from what happened to the exit status of `amend` (../shared/CLI.md):
0 success, 1 a user error (one line on stderr), 3 a conflict, 130 interrupted.

Any other exception (a library error no boundary check caught yet) is still one line and exit 1,
never a traceback: an input Amend does not check yet must not look like a crash to a script.
``AMEND_DEBUG=1`` in the environment adds the traceback on stderr before that line, for every error.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback

from core.cli.output import tell
from core.cli.progress import StderrProgress
from core.errors import AmendError

logger = logging.getLogger(__name__)

OK = 0
USER_ERROR = 1
CONFLICT = 3  # the value of core.errors.ConflictError.exit_code
INTERRUPTED = 130
DEBUG_VARIABLE = "AMEND_DEBUG"


def debugging() -> bool:
    """Whether ``AMEND_DEBUG`` asks for tracebacks (set and not 0 / empty / false / no)."""
    return os.environ.get(DEBUG_VARIABLE, "").strip().lower() not in ("", "0", "false", "no")


def exit_code(error: BaseException) -> int:
    """The exit status for an error a user can act on: an AmendError says its own (1, or 3 for a
    conflict); an OSError (a path that cannot be read or written) is a user error."""
    if isinstance(error, AmendError):
        return error.exit_code
    if isinstance(error, KeyboardInterrupt):
        return INTERRUPTED
    return USER_ERROR


def one_line(error: BaseException) -> str:
    """``amend: error: <message>`` on one line, whatever the message holds."""
    if isinstance(error, OSError) and error.filename is not None:
        message = f"cannot use {error.filename}: {error.strerror or error}; check the path and its permissions."
    else:
        message = str(error) or type(error).__name__
    message = " ".join(message.split())
    return f"amend: error: {message}"


def unexpected_line(error: BaseException) -> str:
    """The one line for an error no check anticipated: its type and message, and how to see more."""
    message = " ".join((str(error) or "(no message)").split())
    if len(message) > 500:  # a library can put a whole file or array in its message
        message = message[:500] + "..."
    return (f"amend: error: unexpected {type(error).__name__}: {message}; rerun with {DEBUG_VARIABLE}=1 for the "
            "traceback, and report it if the input looks valid.")


def run(args: argparse.Namespace) -> int:
    """Run the parsed command's handler and turn its outcome into the exit status."""
    progress = StderrProgress(enabled=True)
    try:
        return int(args.handler(args, progress) or OK)
    except BrokenPipeError:
        # `amend flags ... | head`: the reader has gone; nothing is left to say to it, and Python's
        # own flush at exit must not complain about it either.
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return USER_ERROR
    except (AmendError, OSError) as error:
        progress.close()
        logger.debug("error details", exc_info=True)
        if debugging():
            traceback.print_exc(file=sys.stderr)
        tell(one_line(error))
        return exit_code(error)
    except KeyboardInterrupt as interrupt:
        progress.close()
        tell("amend: interrupted; finished batches are kept and the next run resumes.")
        return exit_code(interrupt)
    except Exception as error:  # noqa: BLE001 - the last guard: one line, never a traceback (see above)
        progress.close()
        if debugging():
            traceback.print_exc(file=sys.stderr)
        tell(unexpected_line(error))
        return USER_ERROR
    finally:
        progress.close()
