"""The book built from the results: pages executed with papermill, Jupyter Book, the
supplement, the cache and the comparison of two builds. It only shows what the results stage
(`calcinosis.report.results`) computed; chapters call `calcinosis.book.page`.

May import `report` and every layer below it; nothing of `cli`.
"""
