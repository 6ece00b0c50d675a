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
