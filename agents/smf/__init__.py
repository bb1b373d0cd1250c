"""SMF agent (Service Management Framework, SSP's SMF role) and the SSP chosen-server endpoint."""
