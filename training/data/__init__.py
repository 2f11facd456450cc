"""Dataset readers, splits and tf.data pipelines."""
