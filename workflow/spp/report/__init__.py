"""The figures and pages of Snakemake's report: paper-layout tables (`report_tables`), plots
(`plotting`), and where the numbers came from (`provenance`)."""
