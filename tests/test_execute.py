"""A page worker's warm kernel: pages run one after another in it without the worker keeping
anything of theirs (a 500-patient book runs about 250 pages in each worker)."""

from __future__ import annotations

import threading

import psutil
import pytest

from calcinosis.book import execute

PAGE = """---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---

```{code-cell} ipython3
:tags: [parameters]

value = 0
```

```{code-cell} ipython3
print(value * 2)
```
"""


@pytest.mark.system
def test_pages_in_a_warm_kernel_leave_no_client_open(tmp_path):
    """nbclient leaves open the client it makes from a kernel manager it was given; the
    worker closes it after each page, so its threads and open files stay as after the first."""
    execute.keep_warm_kernel()
    try:
        execute.warm_up(str(tmp_path))
        counts = []
        for value in range(4):
            out = execute.execute_page(
                PAGE.encode(),
                "md:myst",
                {"value": value},
                str(tmp_path / "out.ipynb"),
                str(tmp_path),
            )
            assert out["ok"], out
            assert f"{2 * value}" in (tmp_path / "out.ipynb").read_text()
            counts.append((threading.active_count(), psutil.Process().num_fds()))
        assert counts[-1] == counts[0], counts
    finally:
        execute._shutdown_warm_kernel()
