"""The analyses of one dataset: the GEE and its covariance structures, the mixed model,
cluster-deletion influence, the per-patient rates, radiography, safety, the sensitivity grid
and the figures the discussion rests on, each returning plain frames and numbers.

May import `data` and the base modules; nothing of `simulate`, `report`, `book` or `cli`.
"""
