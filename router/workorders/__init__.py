"""Work orders (工单): tables, the lifecycle state machine, persistence, the lifecycle actions and
the queries behind lists and lookups."""
