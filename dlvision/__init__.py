"""dlvision: an autograded Deep Learning for Computer Vision course and its course-ops toolkit."""

__version__ = "0.1.0"
