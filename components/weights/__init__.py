"""The model's weights: the init container that stages them on the node's NVMe cache, the S3
mirror (bucket, its IAM, the Job that fills it) and the copy module that Job runs.

May import the rooms below it (facts, settings, aws, kubernetes); not `components.serving`.
"""
