"""Decision-quality benchmarks: simulated rollouts judged by ours, the peers' rules, an oracle."""
