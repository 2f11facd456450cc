"""Generated gRPC/protobuf modules of the ``eyepic.v1`` API (proto/eyepic/v1/); `make proto` rewrites them."""
