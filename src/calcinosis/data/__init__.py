"""The trial's data: the schema of its tables, the one loader that validates a dataset
(`trial`), the optional files, the limits of what a dataset may hold, its provenance, the
dosing and the design, and the analyses kept once per loaded trial (`memo`).

May import the base modules at the package's root; nothing of `stats`, `simulate`,
`report`, `book` or `cli`.
"""
