"""What training keeps between iterations and across runs: counters, the resume file, random states,
the NaN guard and stop signals."""
