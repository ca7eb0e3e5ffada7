"""The code-dataset pipeline and its publishing."""
