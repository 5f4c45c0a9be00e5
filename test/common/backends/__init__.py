"""Backends: each architecture's tiny model run through an export or runtime, compared
with eager (docs/BACKENDS.md).

catalog.py is the table of backends (adding one is one entry), runners.py builds and
runs each, work.py drives one architecture through them (build once, reuse, "not
reached" after a failed dependency), expectations.py reads, judges and rewrites the
committed expected statuses in test/common/data/backends/.
"""
