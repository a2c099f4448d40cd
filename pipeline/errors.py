"""Errors a user can act on, each carrying the exit status the CLI returns for it."""


class PipelineError(Exception):
    """A problem the user must fix; the CLI prints it without a traceback."""

    exit_code = 1


class ManifestError(PipelineError):
    """The manifest is wrong; raised before any work starts, naming the key path."""

    exit_code = 2

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid manifest:\n" + "\n".join(f"  {p}" for p in problems))


class OutputExistsError(PipelineError):
    """Refuses to overwrite a complete output unless asked."""

    exit_code = 2
