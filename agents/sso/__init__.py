"""Seed 004's domain: content-addressed file blocks, block/full-file caches, Zipf workloads,
verified lookup (local -> neighbours -> origin), workflow-net composition and soundness (pm4py),
the secure workflow net WFs = (WFnet, A, chi, R, Pi, xi) and the three composition strategies.

No grpc, docker or ansible here: the blockcache/composer agents and the SimPy simulator
(`edgeferry.sso.sim`) run this same code.
"""
