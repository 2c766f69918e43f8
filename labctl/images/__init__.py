"""Images: building the workload, example and labctl images, their platforms, the scenario library."""
