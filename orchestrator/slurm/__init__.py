"""A sweep as ONE Slurm job holding a whole Ray cluster: request.py is what the job asks
Slurm for (each option's flag, default and rule), submit.py submits it through
submitit and follows, reports or cancels it from the login node; node.py is what every task
of the job runs (Ray head plus sweep driver on task 0, Ray workers on the others), and
stops and requeues the job on preemption or near its time limit."""
