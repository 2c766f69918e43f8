"""Check kinds: one module per kind (model, keys, builder, judge), listed in ``registry.KINDS``.

Import a body from its kind's module: ``from labctl.scenario.kinds.segment import SegmentCheck``.
"""
