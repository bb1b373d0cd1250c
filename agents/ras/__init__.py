"""RAS agent: the RASP registry (clouds, the RAS table, allocations per service). A host's RASP
endpoint runs in its node agent (`agents.node.rasp_core`)."""
