"""conclab's benchmark harness: bench/run's driver (bench/README.md, "The driver")."""
