"""Exceptions that the CLI turns into a clear message and a non-zero exit code."""


class StageError(RuntimeError):
    """A stage cannot do its work: bad input, a missing file, a failed subprocess.

    The message must name the file/record and say what to fix; the CLI prints it without a traceback.
    """
