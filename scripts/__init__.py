"""Generators of committed files: the workflow templates, the README pictures, the torchvision CPU shim."""
