"""From a validated sweep to the stage executions it needs: plan.py builds the dependency
graph of content-keyed nodes (equal work is one node, a stored artifact means done), and
dag.py hands that graph to Ray Tune as a Searcher that releases a node only once its parents
are done."""
