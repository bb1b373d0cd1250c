"""The TCFDL offloading client (a data-providing instance): library and command."""
