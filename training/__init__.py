"""Training: data readers, model builders, training loops, evaluation, export.

Not needed at serving time: every export carries what serving needs.
"""
