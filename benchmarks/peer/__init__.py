"""``python -m benchmarks peer``: crmcore beside a peer CRM, on the same data, in the same run.

The peer is MicroPyramid's Django-CRM 0.9.0 (PyPI ``django-crm``), run in a virtualenv of its own
(``venv.py``) so that nothing of it reaches the project's environment. The modules here split by
the interpreter that imports them:

* ``figures`` and ``mapping``: the standard library only, imported by both sides;
* ``settings`` and ``driver``: the peer's side (Django 3.2), run as a subprocess in the peer's venv;
* ``venv`` and ``compare``: the project's side, which measures crmcore through the harness of
  ``benchmarks.run`` and prints both in one table.
"""
