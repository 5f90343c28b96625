"""User-facing errors: every message names the file, key or option at fault and the fix."""


class FtbenchError(Exception):
    """Raised for bad input; the CLI prints it without a traceback and exits 2."""
