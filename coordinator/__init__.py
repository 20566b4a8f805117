"""Review rounds: gather the reviews that belong together, apply a policy, publish one outcome."""
