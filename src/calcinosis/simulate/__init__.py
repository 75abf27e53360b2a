"""Data made rather than measured: the reconstruction of the unpublished dataset from the
article's summaries (`sprite`, `reconstruct`, `article`) and its audit against them, the
ensemble of reconstructions and what the summaries pin down, and the planning simulation
(`simulation`, `power`), all run as tasks on Dask (`runner`).

May import `stats`, `data` and the base modules; nothing of `report`, `book` or `cli`.
"""
