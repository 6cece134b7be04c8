"""Build environments: declared, immutable roots that every build runs in.

A declaration (:mod:`.declaration`, TOML) names a Debian base made by ``mmdebstrap``
(:mod:`.bootstrap`, mirror from the host's apt sources: :mod:`.aptsources`) and/or a layer of
packages from a cairn channel (:mod:`.layer`). :mod:`.build` makes the tree, derives its
manifest (:mod:`.contents`) and packs it reproducibly (:mod:`.archive`) as
``<sha256>.tar.zst``. vessel stores and signs environments (:mod:`daemon.vessel.environments`);
builders pull, verify and cache them (:mod:`.cache`) and assemble a per-build root from one
plus the build's dependencies (:mod:`.buildroot`). The formats are in :mod:`.manifest`.
"""
