"""The gRPC front: ``eyepic.v1.Recommender`` (stubs generated into ``eyepic/v1``) over ``services``."""
