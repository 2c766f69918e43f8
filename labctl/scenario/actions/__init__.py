"""The step actions of a ``steps:`` timeline, one module each; ``registry.ACTIONS`` lists them."""
