"""The book built from the results: pages executed with papermill, Jupyter Book, the supplement,
the cache and the comparison of two builds. The analysis lives in the package above; this part
only shows what `calcinosis.results` computed."""
