"""``flywheel cost``: the idle monthly cost of an environment, estimated from its synthesized templates.

* :mod:`flywheel.cost.prices` — the dated, region-specific price table (``prices/<region>.yaml``);
* :mod:`flywheel.cost.model` — every resource priced at rest (or free, or "not priced"), pipeline run costs;
* :mod:`flywheel.cost.report` — per team and platform baseline, goals and knobs;
* :mod:`flywheel.cost.assembly` — templates from a ``cdk.out`` assembly or an in-process synth;
* :mod:`flywheel.cost.render` — the rich tables and ``docs/cost.md``.
"""
