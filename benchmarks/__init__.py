"""Measurements behind the numbers in docs/ (solvers, the node pipeline, data-set jobs, memory, GPU checks),
and the behaviour snapshot a refactor is checked against."""
