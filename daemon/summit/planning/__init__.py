"""Summit's planning core: recipes, the dependency graph, task states, the planner and the
views over them. Pure functions and data only — no I/O module may be imported here (a test in
``tests/unit/summit/test_layering.py`` keeps it so), which is what makes planning testable
without a broker and a recorded run replayable."""
