"""SMF agent (Service Management Framework, SSP's SMF role): services, users, devices,
servers, and Migrate Service (`migration`: the plan; `container`: its node-agent phases; `relay`:
the RASP run the SMF carries between the registry and two node agents)."""
