"""A sweep as ONE Slurm job holding a whole Ray cluster: submit.py submits it through
submitit and follows, reports or cancels it from the login node; node.py is what every task
of the job runs (Ray head plus sweep driver on task 0, Ray workers on the others), and
stops and requeues the job on preemption or near its time limit."""
