"""What the book shows, computed once: the results stage (`results`), its sections of named
values, tables and figures (`sections`), the tables, figures and their theme, the sentences
on the GEE and the planning chapter's report.

May import `simulate`, `stats`, `data` and the base modules; nothing of `book` or `cli`.
"""
