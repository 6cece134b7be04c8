"""Summit: the scheduler. Pure planning core (recipes, graph, planner, task states) plus git."""
