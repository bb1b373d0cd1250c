"""Workloads that edgeferry deploys and migrates: the NMS (seed 000) and synthetic images."""
