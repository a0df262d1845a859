"""The steps of `medai bundle build`, in order; each takes the BuildContext and returns the artifacts it adds."""
