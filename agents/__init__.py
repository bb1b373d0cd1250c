"""The deployed side of edgeferry: one package per gRPC agent plus shared pieces."""
