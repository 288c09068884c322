"""The pure core: SLA calendar arithmetic, the planner, message rules, config validation.

No clock reads, no I/O, no SQLAlchemy: the workflow imports these modules.
"""
