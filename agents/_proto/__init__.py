"""Generated protobuf/gRPC code (``python scripts/gen_proto.py``); do not edit by hand.

Import messages as ``from agents._proto.edgeferry.common.v1 import common_pb2``.
"""
