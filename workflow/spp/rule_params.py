"""Rule parameters that Snakemake passes to a script but neither compares nor lists: plain
values are rerun triggers and appear in the report, these stand beside such a value."""

from __future__ import annotations


class Unlisted:
    """A large value for the script (a table's rows: a screenful per job in the report's params
    list), tracked by a digest param beside it."""

    def __init__(self, value, label: str = ""):
        self.value = value
        self.label = label

    def __repr__(self) -> str:
        return f"<{self.label or type(self.value).__name__}>"

    __str__ = __repr__


class ReportText:
    """A text file's content, read when rendered (``str``): lets a report caption quote text that
    is computed after the workflow ran. Its repr names only the path, so as a Snakemake param it
    never makes a rule rerun."""

    def __init__(self, path: str):
        self.path = str(path)

    def __repr__(self) -> str:
        return f"ReportText({self.path!r})"

    def __str__(self) -> str:
        try:
            with open(self.path) as f:
                return f.read().strip()
        except OSError:
            return f"(not built yet: {self.path})"
