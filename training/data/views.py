"""Training-view parameters shared by the tf.data pipeline and the portable
numpy one (``training.portable``, which runs where TensorFlow is absent)."""

ASPECT_RANGE = (3 / 4, 4 / 3)  # of random-resized crops, width / height
