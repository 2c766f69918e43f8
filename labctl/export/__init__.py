"""Export of scenarios to other tools: a Compose file and Kubernetes manifests."""
