"""TFMA metric modules the Evaluator loads by name, and the scores they share."""
