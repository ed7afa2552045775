"""runledger's benchmarks: scenarios S0-S9 side by side with MLflow (see benchmarks/README.md).

``python -m benchmarks.scenarios``  runledger's scenarios, one JSON object on stdout;
``python -m benchmarks.compare``    ours and MLflow's in one invocation, ratios, RESULTS.md;
``python -m benchmarks.scaling``    S4 / S1 / S2 curves with peak memory per point.

Nothing here is a dependency of the package: MLflow runs in its own virtual environment.
"""
