"""Executable reproduction of the intralesional infliximab trial in JDM calcinosis.

The package holds every computation the book shows: data loading and validation
(`data`), the reconstruction of the unpublished dataset (`reconstruct`), the models
(`models`) and the build pipeline (`build`). Chapters only call into it.
"""

__version__ = "0.1.0"
