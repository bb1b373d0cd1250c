"""Controller-side pieces of seed 004: the SimPy simulator (`edgeferry.sso.sim`) that drives
the same domain code as the blockcache/composer agents (`agents.sso`) at paper scale."""
