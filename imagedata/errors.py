"""The one exception the data layer raises for problems the user can fix."""


class DataError(Exception):
    """A user-facing data problem (missing folder, bad layout, failed download, ...).

    The message is a single line meant to be printed by the CLI without a traceback.
    """
