"""RAS agent (RASP Registry, RAS table) and the RASP cloud endpoint (Server SA / Cloud CB)."""
