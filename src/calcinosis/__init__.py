"""Executable reproduction of the intralesional infliximab trial in JDM calcinosis.

The package's folders are its data flow, and each layer imports only those before it
(`tests/test_layers.py` checks it):

1. base modules here at the root: errors, paths, parameters, text and number formatting,
   names, code hashes, versions; they import nothing of the package;
2. `data`: the schema and the one loader that validates a dataset, its provenance and limits;
3. `stats`: the analyses (GEE, mixed model, per patient, radiography, safety, sensitivity);
4. `simulate`: the reconstruction of the unpublished dataset, its audit against the article,
   the ensemble and the planning simulation, run on Dask;
5. `report`: the results stage, the sections of results, tables, figures and sentences;
6. `book`: the book built from the results (chapters call `book.page.show`);
7. `cli`: the `calcinosis` command.
"""

__version__ = "0.1.0"
