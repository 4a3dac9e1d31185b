"""The one exception type for user mistakes in the analyses, and the entry-point shell that turns
it into one line on stderr and exit code 2."""
import sys

from runner.errors import EXIT_OK, EXIT_USAGE  # noqa: F401 - the codes every entry point shares


class AnalysisError(Exception):
    """A user-facing error: the CLI prints its one-line message without a traceback."""


def command_main(build_parser, argv, work):
    """Run one subcommand: parse `argv` (None: sys.argv[1:]) with `build_parser()`, then
    `work(args)` -> exit code; an AnalysisError becomes 'error: ...' on stderr and exit 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    try:
        return work(args)
    except AnalysisError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        return EXIT_USAGE
