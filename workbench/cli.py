"""The ``workbench`` command. Each subcommand lives in ``workbench/commands/<name>.py`` and owns its parser
(``add_parser``) and its ``main``; heavy libraries (torch, transformers, pandas) are imported only when a command
runs, so ``workbench --help`` answers at once.

Bad input ends with one line ``error: …`` on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys

from workbench.errors import PATH_ERRNOS, WorkbenchError
from workbench.interrupts import exit_code, install_sigterm_handler, interrupted_message

EXIT_USAGE = 2
# modules in workbench/commands, in --help order
COMMANDS = ("run", "demo", "report", "replay", "sweep", "export", "train")
OOM_HINT = "out of memory (try a smaller model, --dtype bfloat16, fewer --max-new-tokens or a smaller --gamma)"
TRAIN_OOM_HINT = "out of memory (try a smaller shape: --preset, --draft-layers, --draft-hidden)"


class Parser(argparse.ArgumentParser):
    """argparse with usage errors on one line, like every other bad input."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="workbench", description="Speculative decoding workbench: real speculative generation, "
                    "per-step traces, offline reports.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for name in COMMANDS:
        importlib.import_module(f"workbench.commands.{name}").add_parser(sub)
    return parser


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The command line, parsed; an unknown option is refused by its subcommand's parser, with the nearest option
    it has (``workbench run: unrecognized arguments: --gama 2 (did you mean --gamma?)``)."""
    import difflib

    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        command = sub.choices[args.command]
        options = [o for a in command._actions for o in a.option_strings if o.startswith("--")]
        flag = next((u.split("=", 1)[0] for u in unknown if u.startswith("--")), None)
        near = difflib.get_close_matches(flag, options, n=1, cutoff=0.6) if flag else []
        hint = f" (did you mean {near[0]}?)" if near else ""
        command.error(f"unrecognized arguments: {' '.join(unknown)}{hint}")
    return args


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the network
    install_sigterm_handler()  # SIGTERM (kill, timeout, pre-emption) unwinds like Ctrl-C below
    garbled = next((a for a in (sys.argv[1:] if argv is None else argv) if not _is_text(a)), None)
    if garbled is not None:  # a path or text the shell passed in another encoding: every writer would choke on it
        shown = garbled.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        print(f"error: workbench: the argument '{shown}' is not UTF-8 text (paths, prompts and names must be); rename "
              "the file or folder, or give the text in UTF-8", file=sys.stderr)
        return EXIT_USAGE
    args = parse(argv)  # --help and usage errors end here, before any heavy import
    from workbench.progress import quiet_libraries

    quiet_libraries()  # no "Loading weights" bars or library chatter between our own lines
    try:
        return args.func(args)
    except WorkbenchError as exc:  # one line, even where a library's message it quotes spans several
        print("error: " + " ".join(line.strip() for line in str(exc).splitlines() if line.strip()), file=sys.stderr)
        return exc.exit_code  # 2: bad input; 1: an environment failure such as a full disk
    except KeyboardInterrupt as exc:  # Ctrl-C → 130, SIGTERM (Terminated) → 143
        print(interrupted_message(sys.argv[1:] if argv is None else argv, getattr(args, "out", None)), file=sys.stderr)
        return exit_code(exc)
    except BrokenPipeError:  # stdout closed early (`workbench run … | head -1`): what was measured is saved
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the exit's flush must not fail again
        return 128 + 13  # as a shell reports a program that SIGPIPE ended
    except OSError as exc:  # a path given that cannot be read or written (missing parent, not a directory, read-only)
        if exc.filename is None:
            raise
        what = exc.strerror or str(exc)
        if exc.errno == errno.EEXIST and not os.path.isdir(exc.filename):  # mkdir over a file, as a parent of --out
            what = "exists and is not a directory"
        print(f"error: {exc.filename}: {what}", file=sys.stderr)
        return EXIT_USAGE if exc.errno in PATH_ERRNOS else 1
    except ModuleNotFoundError as exc:  # a library this environment lacks (e.g. a GPU image without plotly)
        package = (exc.name or "").split(".")[0]
        if package in ("", "workbench"):  # our own module missing is a bug: show it whole
            raise
        print(f"error: `workbench {args.command}` needs the Python package '{package}', which is not installed here "
              "(bash scripts/setup.sh, or pip install -r requirements.txt, installs every pinned package)",
              file=sys.stderr)
        return EXIT_USAGE
    except MemoryError:
        print(f"error: {TRAIN_OOM_HINT if args.command == 'train' else OOM_HINT}", file=sys.stderr)
        return 1
    except RuntimeError as exc:  # CUDA OOM is a RuntimeError subclass; anything else is a bug: show it whole
        if not any(sign in str(exc) for sign in ("out of memory", "can't allocate memory")):  # CUDA / CPU allocator
            raise
        print(f"error: {TRAIN_OOM_HINT if args.command == 'train' else OOM_HINT}", file=sys.stderr)
        return 1


def _is_text(arg: str) -> bool:
    """Whether a command-line argument is text (Python maps bytes that are not UTF-8 to lone surrogates)."""
    try:
        arg.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
