"""Transport-free security code: capabilities (BCSL + keyed tag), crypto primitives, RASP, SSP.

Nothing here imports grpc; messages are dataclasses with a canonical byte encoding
(`agents.security.encoding`) so the agents can carry them in protobuf `bytes` fields.
"""
