"""composer agent: composes, checks, assigns, authorizes and runs service-specific overlays."""
