"""avalanche: the builder.

It takes a ready task, fetches the recipe at its commit (:mod:`.checkout`), its sources
(:mod:`.sources`) and build dependencies (:mod:`.deps`), runs the recipe's steps through a
backend (:mod:`.backend`, :mod:`.script`, :mod:`.noop`), packs the install tree into packages
(:mod:`.packaging`) and serves them (:mod:`.artefacts`). :func:`.build.run_build` ties these
together; the broker wiring lives in a thin service shell on top of it.
"""
