"""What every engine shares: the parameter declarations and the estimator contract, registries by name, model
directories with a manifest, typed events and job kinds. Imports nothing heavy (no torch, no service)."""
