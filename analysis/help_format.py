"""Help text that states every option's default exactly once, the one-line-error parser, and
argparse types shared by the subcommands' parsers."""
import argparse

from runner.errors import EXIT_USAGE


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad argument in one line (no usage dump) and exits with 2."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"error: {message} (see {self.prog} --help)\n")


class DefaultsFormatter(argparse.HelpFormatter):
    """Appends '(default: X)' to each option's help, unless the help already names its default.

    None is shown as 'none' and a switch (store_true) as 'off', so no option is left without one.
    """

    def _get_help_string(self, action):
        text = action.help or ""
        if (not action.option_strings or action.default is argparse.SUPPRESS
                or "(default" in text or "%(default)" in text):
            return text
        if isinstance(action, argparse._StoreTrueAction):  # noqa: SLF001 - argparse's switch type
            shown = "off"
        elif action.default is None:
            shown = "none"
        elif isinstance(action.default, (list, tuple)):
            shown = ",".join(str(v) for v in action.default)
        else:
            shown = "%(default)s"
        return f"{text} (default: {shown})".lstrip()


def positive_int(text):
    """argparse type: an integer > 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def positive_float(text):
    """argparse type: a finite float > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value
