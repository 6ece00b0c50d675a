"""Tables: the experiment grid from the config (`experiments`), one spec per table
(`table_specs`), aggregation over seeds (`aggregate`), the number format (`formatting`),
paper-vs-ours verdicts (`summary`), the committed evidence pages (`evidence`), and the small
experiments behind Figures 1 and 2 (`figure_experiments`)."""
