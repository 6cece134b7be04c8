"""One reader (and writer) per file format, shared by every service and command.

``stone.yaml`` (:mod:`.stone`), its macros (:mod:`.macros`), ``manifest.<arch>.jsonc``
(:mod:`.manifest`) and a published repository's layout (:mod:`.layout`). The package is pure:
it parses and renders bytes and text, and never touches files, sockets or clocks, so summit's
planning core may use it and every reader of a format agrees with every other.
"""
